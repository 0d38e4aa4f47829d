"""The train-and-register sub-pipeline both pipelines run: validated data in, a champion out.

Graph::

    choose engine -> features: DuckDB in the pod | a SparkApplication (dsl.If / dsl.Else)
      -> labels -> train x N (ParallelFor) -> evaluate -> register + promote -> deploy

The training pipeline runs it on every run; the retraining pipeline inside its ``retrain``
branch. Its tasks read live state where they register and deploy (not cached) and their
cluster settings from the Secret and ConfigMap
(:func:`churn_kfp.orchestration.cluster_env.use_cluster_config`), like every task.
``feature_engine`` picks where the features are computed: ``duckdb`` in the step's pod,
``spark`` as a SparkApplication (:mod:`churn_kfp.components.spark_features`), ``auto`` by the
transactions' size against ``spark_threshold_bytes`` (docs/scale.md). KFP passes no
artifact out of a condition (and kfp.local resolves no artifact ``dsl.OneOf``), so each
branch runs the rest of the chain, :func:`register_from_features`, and only the summary
string leaves through ``dsl.OneOf``.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from churn_kfp.components.deployment import deploy_model
from churn_kfp.components.evaluation import evaluate_models
from churn_kfp.components.features import build_features
from churn_kfp.components.labels import label_churn
from churn_kfp.components.registration import register_model
from churn_kfp.components.spark_features import build_features_spark, choose_feature_engine
from churn_kfp.components.training import train_model
from churn_kfp.core.protocol import PROTOCOL
from churn_kfp.orchestration.cluster_env import use_cluster_config
from churn_kfp.orchestration.spark_app import AUTO_SPARK_BYTES

__all__ = ["register_from_features", "train_and_register"]


@dsl.pipeline(
    name="register-from-features",
    description="Label, train candidates in parallel, evaluate, register in MLflow, promote "
    "and deploy the champion.",
)
def register_from_features(
    features: Input[Dataset],
    cutoff_plan: Input[Artifact],
    transactions: Input[Dataset],
    quality_report: Input[Artifact],
    tracking_uri: str,
    model_name: str,
    pipeline_name: str,
    horizon_days: int,
    candidate_models: list,
    n_iter: int,
    seed: int,
    min_f1: float,
    min_roc_auc: float,
    max_train_test_gap: float,
    promotion_margin: float,
    deploy_mode: str,
    namespace: str,
    validation_folds: int,
    canary_percent: int,
    recency_half_life: float,
) -> str:
    """The chain after the features step; returns the registration summary as JSON."""
    labelled = label_churn(
        features=features,
        transactions=transactions,
        horizon_days=horizon_days,
    ).set_display_name("churn labels")

    with dsl.ParallelFor(items=candidate_models, parallelism=3) as model_type:
        trained = train_model(
            labelled=labelled.outputs["labelled"],
            model_type=model_type,
            n_iter=n_iter,
            seed=seed,
            validation_folds=validation_folds,
            recency_half_life=recency_half_life,
        ).set_display_name("train candidate")

    evaluated = evaluate_models(
        labelled=labelled.outputs["labelled"],
        models=dsl.Collected(trained.outputs["model"]),
    ).set_display_name("evaluate + choose")

    registered = register_model(
        best_model=evaluated.outputs["best_model"],
        evaluation=evaluated.outputs["evaluation"],
        labelled=labelled.outputs["labelled"],
        quality_report=quality_report,
        cutoff_plan=cutoff_plan,
        report=evaluated.outputs["report"],
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_name=pipeline_name,
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
        canary_percent=canary_percent,
    ).set_display_name("deploy champion (KServe)")
    deployed.set_caching_options(False)

    for task in (labelled, trained, evaluated, registered, deployed):
        use_cluster_config(task)
    return registered.outputs["summary"]


@dsl.pipeline(
    name="train-and-register",
    description="Featurize, label, train candidates in parallel, evaluate, register in MLflow, "
    "promote and deploy the champion.",
)
def train_and_register(
    transactions: Input[Dataset],
    customers: Input[Dataset],
    scored_feedback: Input[Dataset],
    quality_report: Input[Artifact],
    tracking_uri: str,
    model_name: str,
    pipeline_name: str,
    horizon_days: int,
    n_train_cutoffs: int,
    eligibility_days: int,
    windows: str,
    candidate_models: list,
    n_iter: int,
    seed: int,
    min_f1: float,
    min_roc_auc: float,
    max_train_test_gap: float,
    promotion_margin: float,
    deploy_mode: str,
    namespace: str,
    test_cutoff: str = PROTOCOL.test_cutoff,
    cutoff_spacing: str = PROTOCOL.cutoff_spacing,
    validation_folds: int = PROTOCOL.validation_folds,
    canary_percent: int = 0,
    recency_half_life: float = PROTOCOL.recency_half_life,
    feature_engine: str = "auto",
    spark_threshold_bytes: int = AUTO_SPARK_BYTES,
) -> str:
    """Trains ``candidate_models`` on cutoffs of the data, registers the best, deploys a champion.

    ``pipeline_name`` is the calling pipeline (it tags the registered version);
    ``canary_percent`` is the new revision's share of the traffic (0: all of it). Returns
    the registration summary as JSON.
    """
    engine = choose_feature_engine(
        transactions=transactions,
        feature_engine=feature_engine,
        spark_threshold_bytes=spark_threshold_bytes,
    ).set_display_name("choose feature engine")
    use_cluster_config(engine)
    feature_inputs = {
        "transactions": transactions,
        "customers": customers,
        "scored_feedback": scored_feedback,
        "horizon_days": horizon_days,
        "n_train_cutoffs": n_train_cutoffs,
        "eligibility_days": eligibility_days,
        "windows": windows,
        "test_cutoff": test_cutoff,
        "cutoff_spacing": cutoff_spacing,
    }
    chain_inputs = {
        "transactions": transactions,
        "quality_report": quality_report,
        "tracking_uri": tracking_uri,
        "model_name": model_name,
        "pipeline_name": pipeline_name,
        "horizon_days": horizon_days,
        "candidate_models": candidate_models,
        "n_iter": n_iter,
        "seed": seed,
        "min_f1": min_f1,
        "min_roc_auc": min_roc_auc,
        "max_train_test_gap": max_train_test_gap,
        "promotion_margin": promotion_margin,
        "deploy_mode": deploy_mode,
        "namespace": namespace,
        "validation_folds": validation_folds,
        "canary_percent": canary_percent,
        "recency_half_life": recency_half_life,
    }
    with dsl.If(engine.output == "spark", name="spark-features"):
        on_spark = build_features_spark(namespace=namespace, **feature_inputs)
        on_spark.set_display_name("features as of cutoffs (SparkApplication)")
        use_cluster_config(on_spark)
        after_spark = register_from_features(
            features=on_spark.outputs["features"],
            cutoff_plan=on_spark.outputs["cutoff_plan"],
            **chain_inputs,
        ).set_display_name("label, train, register")
    with dsl.Else(name="pod-features"):
        in_pod = build_features(**feature_inputs).set_display_name("features as of cutoffs")
        use_cluster_config(in_pod)
        after_pod = register_from_features(
            features=in_pod.outputs["features"],
            cutoff_plan=in_pod.outputs["cutoff_plan"],
            **chain_inputs,
        ).set_display_name("label, train, register")
    return dsl.OneOf(after_spark.output, after_pod.output)
