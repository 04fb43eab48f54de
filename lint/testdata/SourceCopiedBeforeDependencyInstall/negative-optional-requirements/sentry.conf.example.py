# sentry.conf.example.py
