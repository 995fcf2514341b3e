"""Charts for `graph`: PNGs for MMS at unguessable expiring URLs, or a text sparkline where MMS is off."""
