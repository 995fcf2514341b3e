"""The database: one schema, the handle every table borrows, message history, audit, health log, migrations."""
