"""Board descriptions shipped with edgesplit: one TOML file per board (data only; see runtime.boards)."""
