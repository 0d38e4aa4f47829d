"""The training pipeline: raw partitions in, a registered (maybe promoted) model out."""

from kfp import dsl

from churn_kfp.components.data_generation import generate_data
from churn_kfp.components.deployment import deploy_model
from churn_kfp.components.evaluation import evaluate_models
from churn_kfp.components.features import build_features
from churn_kfp.components.ingestion import ingest_and_validate
from churn_kfp.components.labels import label_churn
from churn_kfp.components.registration import register_model
from churn_kfp.components.sentiment import score_sentiment
from churn_kfp.components.training import train_model
from churn_kfp.core.config import MODEL_NAME, TRAINING_PIPELINE
from churn_kfp.orchestration.cluster_env import use_cluster_config

CANDIDATE_MODELS = ["xgboost", "logistic_regression", "random_forest"]


@dsl.pipeline(
    name=TRAINING_PIPELINE,
    description="Ingest, validate, featurize, label, train candidates in parallel, evaluate, "
    "register in MLflow and promote the champion.",
)
def training_pipeline(
    landing_zone: str = "",
    tracking_uri: str = "",
    model_name: str = MODEL_NAME,
    generate: bool = True,
    n_customers: int = 5000,
    n_months: int = 6,
    start_month: str = "2025-01",
    seed: int = 42,
    drift_from_month: int = 0,
    until: str = "",
    horizon_days: int = 30,
    n_train_cutoffs: int = 3,
    eligibility_days: int = 90,
    windows: str = "30,60,90",
    test_cutoff: str = "",
    cutoff_spacing: str = "MS",
    n_iter: int = 6,
    min_f1: float = 0.5,
    min_roc_auc: float = 0.7,
    max_train_test_gap: float = 0.15,
    promotion_margin: float = 0.0,
    deploy_mode: str = "local",
    namespace: str = "",
) -> str:
    """Trains churn models, registers the best and deploys a new champion.

    ``deploy_mode="local"`` only writes the InferenceService manifest; ``"cluster"`` applies
    it to ``namespace`` with KServe. Returns the run summary as JSON.
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

    features = build_features(
        transactions=ingested.outputs["transactions"],
        customers=ingested.outputs["customers"],
        scored_feedback=sentiment.outputs["scored_feedback"],
        horizon_days=horizon_days,
        n_train_cutoffs=n_train_cutoffs,
        eligibility_days=eligibility_days,
        windows=windows,
        test_cutoff=test_cutoff,
        cutoff_spacing=cutoff_spacing,
    ).set_display_name("features as of cutoffs")

    labelled = label_churn(
        features=features.outputs["features"],
        transactions=ingested.outputs["transactions"],
        horizon_days=horizon_days,
    ).set_display_name("churn labels")

    with dsl.ParallelFor(items=CANDIDATE_MODELS, parallelism=3) as model_type:
        trained = train_model(
            labelled=labelled.outputs["labelled"], model_type=model_type, n_iter=n_iter, seed=seed
        ).set_display_name("train candidate")

    evaluated = evaluate_models(
        labelled=labelled.outputs["labelled"],
        models=dsl.Collected(trained.outputs["model"]),
    ).set_display_name("evaluate + choose")

    registered = register_model(
        best_model=evaluated.outputs["best_model"],
        evaluation=evaluated.outputs["evaluation"],
        labelled=labelled.outputs["labelled"],
        quality_report=ingested.outputs["quality_report"],
        cutoff_plan=features.outputs["cutoff_plan"],
        report=evaluated.outputs["report"],
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_name=TRAINING_PIPELINE,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        min_f1=min_f1,
        min_roc_auc=min_roc_auc,
        max_train_test_gap=max_train_test_gap,
        promotion_margin=promotion_margin,
    ).set_display_name("register + promote")
    # The champion lookup reads live registry state: never replay a cached answer.
    registered.set_caching_options(False)

    deployed = deploy_model(
        model_name=model_name,
        champion_version=registered.outputs["champion_version"],
        promoted=registered.outputs["promoted"],
        namespace=namespace,
        mode=deploy_mode,
        tracking_uri=tracking_uri,
    ).set_display_name("deploy champion (KServe)")
    deployed.set_caching_options(False)

    # On a cluster every task reads S3 credentials and service URLs from a Secret and a
    # ConfigMap (never from parameters, so no secret ends up in the compiled YAML).
    for task in (generated, ingested, sentiment, features, labelled, trained, evaluated):
        use_cluster_config(task)
    use_cluster_config(registered)
    use_cluster_config(deployed)
    return registered.outputs["summary"]
