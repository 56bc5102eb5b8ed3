"""The parcel-delivery example: a second domain, with its own Feast repo and data generator."""
