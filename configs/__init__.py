"""Built-in board profiles and scenarios (TOML), loaded by name with
:func:`rfctl.config.load_config`."""
