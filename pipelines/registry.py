"""Every pipeline the project ships, by the name it is compiled and uploaded under."""

from churn_kfp.core.config import RETRAINING_PIPELINE, TRAINING_PIPELINE
from churn_kfp.pipelines.retraining import retraining_pipeline
from churn_kfp.pipelines.training import training_pipeline

PIPELINES = {TRAINING_PIPELINE: training_pipeline, RETRAINING_PIPELINE: retraining_pipeline}
