# Training image for SageMaker training jobs (`[train] backend = "sagemaker"`): the training
# image's pinned packages on a plain Python 3.13, built for the configured instance
# architecture (the CDK asset's platform). LightGBM's wheel needs libgomp.so.1, which the slim
# image lacks: Debian's libgomp1 is installed. SageMaker runs `docker run <image> train`: `train`
# is on PATH and runs functions.train.sagemaker_entry, the same Trainer as the train function.
FROM public.ecr.aws/docker/library/python:3.13-slim

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

COPY layers/training/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

ENV PYTHONUNBUFFERED=1 PYTHONPATH=/opt/program PATH=/opt/program:${PATH} \
    MLOPS_MODEL_CODE=/opt/program/model_code
COPY functions/ /opt/program/functions/
# The `[train] code` folder (the CDK's MODEL_CODE build argument), as in the Lambda image.
ARG MODEL_CODE=layers/training/model_code
COPY ${MODEL_CODE}/ /opt/program/model_code/
COPY layers/training/train /opt/program/train
RUN chmod 0755 /opt/program/train && python -m compileall -q /opt/program/functions
WORKDIR /opt/program
