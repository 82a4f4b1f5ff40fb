# One image for web and worker; docker-compose.yml picks the command.
# BASE_IMAGE: any Debian-like image with Python 3.11+ and its venv module (deploy/base-images.sh
# builds a stand-in where no image registry is reachable).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app MPLCONFIGDIR=/tmp/matplotlib
RUN python3 -m venv /opt/venv \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app \
    && install -d -o app -g app /home/app/.keras
WORKDIR /app

# Dependencies first (from pyproject.toml alone): a code change rebuilds only the layers below.
# The pip_cert secret is for machines whose HTTPS goes through a private CA (`make compose-test`
# passes PIP_CERT's file when set); a normal build has none and needs none.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY gunicorn.conf.py ./
COPY templates templates
COPY web web
COPY worker worker
# the data folders are volumes (docker-compose.yml); created here so they start owned by app
RUN mkdir database features uploads output && chown app:app database features uploads output
USER app
EXPOSE 5000
CMD ["python", "-m", "worker"]
