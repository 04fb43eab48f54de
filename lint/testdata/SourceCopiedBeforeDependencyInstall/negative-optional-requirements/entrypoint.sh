# entrypoint.sh
