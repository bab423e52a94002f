"""Decision tables: rules that map an input to outputs, loaded from files and used by runs."""
