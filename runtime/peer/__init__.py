"""The peer: serves the rest of the model to devices over the wire protocol."""
