# Training image for SageMaker training jobs (`[train] backend = "sagemaker"`): the training
# image's pinned packages on a plain Python 3.13, built for the configured instance
# architecture (the CDK asset's platform). SageMaker runs `docker run <image> train`: `train`
# is on PATH and runs functions.train.sagemaker_entry, the same Trainer as the train function.
FROM public.ecr.aws/docker/library/python:3.13-slim

COPY layers/training/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

ENV PYTHONUNBUFFERED=1 PYTHONPATH=/opt/program PATH=/opt/program:${PATH}
COPY functions/ /opt/program/functions/
COPY layers/training/train /opt/program/train
RUN chmod 0755 /opt/program/train && python -m compileall -q /opt/program/functions
WORKDIR /opt/program
