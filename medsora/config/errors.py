"""The configuration error every part raises (a leaf module: schemas and specs import it without the loader)."""


class ConfigError(ValueError):
    """A configuration problem a user can fix: names the key, the source and the fix."""
