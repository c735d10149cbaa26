"""controller_client."""
