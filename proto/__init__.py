"""The envelope schema (`envelope.proto`) and its generated Python code (`proto.envelope_pb2`); the HTTP
gateway's batch format (`gateway.proto`, `proto.gateway_pb2`).

The helpers that build, encode and mirror envelopes into headers live in `common.envelope` and
`common.headers`. Regenerate with `python -m proto.generate`.
"""
