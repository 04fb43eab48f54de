import flask
GREETING = 'hello'
