#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER of this function where API Gateway streams its responses: run stream_handler under
# videojobs.lambda_streaming, which takes invocations from the Runtime API itself, instead of the managed Python
# runtime's loop (whose command line, "$@", is not used). The layer's packages and the code on the path, as the
# managed runtime puts them there.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-/var/task}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -c 'from functions.events.handler import stream_handler
from videojobs.lambda_streaming import main
main(stream_handler)'
