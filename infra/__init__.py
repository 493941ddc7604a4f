"""AWS infrastructure of videojobs: the CDK construct, its stack and the app that synthesizes it."""
