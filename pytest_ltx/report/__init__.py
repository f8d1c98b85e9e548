"""Reports built from results, never from live objects: results.json is the single source of truth and
the pytest-html extras, the terminal summary and the GitHub step summary are rendered from it."""
