"""The connectors that ship with opsloom, registered through the ``opsloom.connectors`` entry
point group like anyone else's."""
