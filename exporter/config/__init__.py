"""Configuration: the model, pure parsing, file and environment loading, and the web-config file."""
