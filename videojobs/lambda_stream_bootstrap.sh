#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER of a streaming function: run videojobs.lambda_streaming as the runtime instead of the
# managed Python runtime's loop (its command line, "$@", is not used). The layer's packages and the function's
# code on the path, as the managed runtime puts them there.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-/var/task}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m videojobs.lambda_streaming
