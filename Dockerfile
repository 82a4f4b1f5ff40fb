# One image for both services; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY web web
COPY worker worker
COPY templates templates
RUN pip install --no-cache-dir .
COPY . .
