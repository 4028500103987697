"""Run configuration: YAML composition, command-line overrides and typed schemas.

* :mod:`medsora.config.loader` — ``compose(experiment, overrides)`` → a validated ``DictConfig``.
* :mod:`medsora.config.schema` — ``RunConfig``, the typed dataclass tree every config is checked against.
* :mod:`medsora.config.fields` — small helpers for schema fields (imported by every component's schema).

The names below are resolved lazily: the component schemas import :mod:`medsora.config.fields`, and
the loader imports the component schemas, so importing this package must not import the loader.
"""
__all__ = ["ConfigError", "config_dir", "search_path", "use_config_dirs", "add_config_dir_argument", "find_config",
           "compose", "parse_cli", "to_yaml", "list_configs", "PATH_ENV"]


def __getattr__(name: str):
    if name in __all__:
        from medsora.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'medsora.config' has no attribute {name!r}")
