"""The catalog: "what flows where", from the ingest topics' headers, the workers' route set and the
schema registry. `refinery.catalog.app` serves it (`refinery-catalog`)."""
