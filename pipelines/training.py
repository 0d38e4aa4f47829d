"""The training pipeline: raw partitions in, a registered (maybe promoted) model out."""

from kfp import dsl

from churn_kfp.components.data_generation import generate_data
from churn_kfp.components.ingestion import ingest_and_validate
from churn_kfp.components.sentiment import score_sentiment
from churn_kfp.core.config import MODEL_NAME, TRAINING_PIPELINE
from churn_kfp.core.protocol import PROTOCOL
from churn_kfp.orchestration.cluster_env import use_cluster_config
from churn_kfp.orchestration.spark_app import AUTO_SPARK_BYTES
from churn_kfp.pipelines.train_and_register import train_and_register

__all__ = ["training_pipeline"]


@dsl.pipeline(
    name=TRAINING_PIPELINE,
    description="Ingest, validate, featurize, label, train candidates in parallel, evaluate, "
    "register in MLflow and promote the champion.",
)
def training_pipeline(
    landing_zone: str = "",
    tracking_uri: str = "",
    model_name: str = MODEL_NAME,
    generate: bool = False,
    n_customers: int = 5000,
    n_months: int = 6,
    start_month: str = "2025-01",
    seed: int = PROTOCOL.seed,
    drift_from_month: int = 0,
    until: str = "",
    horizon_days: int = PROTOCOL.horizon_days,
    n_train_cutoffs: int = PROTOCOL.n_train_cutoffs,
    eligibility_days: int = PROTOCOL.eligibility_days,
    windows: str = PROTOCOL.windows,
    test_cutoff: str = PROTOCOL.test_cutoff,
    cutoff_spacing: str = PROTOCOL.cutoff_spacing,
    n_iter: int = PROTOCOL.n_iter,
    validation_folds: int = PROTOCOL.validation_folds,
    recency_half_life: float = PROTOCOL.recency_half_life,
    min_f1: float = PROTOCOL.min_f1,
    min_roc_auc: float = PROTOCOL.min_roc_auc,
    max_train_test_gap: float = PROTOCOL.max_train_test_gap,
    promotion_margin: float = PROTOCOL.promotion_margin,
    deploy_mode: str = "cluster",
    namespace: str = "",
    canary_percent: int = 0,
    feature_engine: str = "auto",
    spark_threshold_bytes: int = AUTO_SPARK_BYTES,
) -> str:
    """Trains churn models, registers the best and deploys a new champion.

    The defaults are a cluster's: the new champion is applied to ``namespace`` with KServe
    (``canary_percent`` of the traffic first; 0 rolls out fully) and the data is the landing
    zone's. ``generate=True`` writes synthetic data first (a demo run on an empty landing
    zone); ``deploy_mode="local"`` only writes the InferenceService manifest (local runs
    default to both: :data:`~churn_kfp.orchestration.localrun.LOCAL_DEFAULTS`). The
    candidate models are the protocol's (:data:`~churn_kfp.core.protocol.PROTOCOL`).
    ``feature_engine`` (``auto`` | ``duckdb`` | ``spark``) picks where the features are
    computed; ``auto`` runs Spark from ``spark_threshold_bytes`` of transactions on.
    Returns the run summary as JSON.
    """
    generated = generate_data(
        landing_zone=landing_zone,
        enabled=generate,
        n_customers=n_customers,
        n_months=n_months,
        start_month=start_month,
        seed=seed,
        drift_from_month=drift_from_month,
    ).set_display_name("generate synthetic data")
    generated.set_caching_options(False)

    ingested = ingest_and_validate(landing_zone=landing_zone, until=until).after(generated)
    ingested.set_display_name("ingest + validate").set_caching_options(False)

    sentiment = score_sentiment(feedback=ingested.outputs["feedback"])
    sentiment.set_display_name("feedback sentiment")

    trained = train_and_register(
        transactions=ingested.outputs["transactions"],
        customers=ingested.outputs["customers"],
        scored_feedback=sentiment.outputs["scored_feedback"],
        quality_report=ingested.outputs["quality_report"],
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_name=TRAINING_PIPELINE,
        horizon_days=horizon_days,
        n_train_cutoffs=n_train_cutoffs,
        eligibility_days=eligibility_days,
        windows=windows,
        test_cutoff=test_cutoff,
        cutoff_spacing=cutoff_spacing,
        candidate_models=list(PROTOCOL.candidate_models),
        n_iter=n_iter,
        validation_folds=validation_folds,
        recency_half_life=recency_half_life,
        seed=seed,
        min_f1=min_f1,
        min_roc_auc=min_roc_auc,
        max_train_test_gap=max_train_test_gap,
        promotion_margin=promotion_margin,
        deploy_mode=deploy_mode,
        namespace=namespace,
        canary_percent=canary_percent,
        feature_engine=feature_engine,
        spark_threshold_bytes=spark_threshold_bytes,
    ).set_display_name("train + register")

    # On a cluster every task reads S3 credentials and service URLs from a Secret and a
    # ConfigMap (never from parameters, so no secret ends up in the compiled YAML); the
    # sub-pipeline wires its own tasks.
    for task in (generated, ingested, sentiment):
        use_cluster_config(task)
    return trained.output
