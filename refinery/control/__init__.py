"""The control plane: the Faust app, the live route set (publish, watch, history), web views and the
`refinery` command line."""
