"""firmware_protocol."""
