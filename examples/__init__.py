"""Example opsloom workflows; ``opsloom up --app examples.workflows:app`` serves them."""
