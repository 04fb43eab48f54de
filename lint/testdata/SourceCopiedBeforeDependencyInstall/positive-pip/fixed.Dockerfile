FROM python:3.12-slim
COPY --chown=app:app requirements.txt /app/
WORKDIR /app
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=app:app . /app
CMD ["python", "app.py"]
