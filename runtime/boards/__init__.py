"""Board descriptions: strict loading of board_configs/*.toml and detection of the board in use."""
