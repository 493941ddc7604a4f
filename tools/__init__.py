"""Developer tools run from the repository (never part of a Lambda function): ``make openapi``."""
