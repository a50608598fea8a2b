"""Version 1 of the public read API: events, sessions, venues, seat maps."""
