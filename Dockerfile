# The VitalStream app image (worker, simulator, alert feed); Kafka, InfluxDB and Grafana
# run from their own images in docker-compose.yml. No training or bench extra (torch,
# matplotlib, py-spy): inference only; worker, simulate and alerts serve draw nothing.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY producers ./producers
COPY models ./models
RUN pip install . \
    && useradd --create-home --uid 10001 vitalstream \
    && mkdir /data && chown vitalstream /data

USER vitalstream
# Compile the signal kernels into this user's numba cache now (site-packages is not
# writable by it), so that no container spends its first half minute compiling.
RUN python -c "from stream.signal.features import warm_up; warm_up()"
CMD ["vitalstream", "--help"]
