"""Identity resolution: from source records to people (see docs/profiles.md)."""
