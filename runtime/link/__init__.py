"""Link emulation: recorded bandwidth traces and a software link that replays them (no root needed)."""
