"""Golden vectors of the envelope contract (`docs/contract.md`): `envelopes.json`, made by `generate.py`."""
