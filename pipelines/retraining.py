"""The retraining pipeline: one run per new period, monitoring first, retraining when needed.

Graph::

    check-new-data ──(has_new)──> ingest + validate ─> sentiment ─> score-and-monitor
         │                                                                 │
         └──(else)──> record-skip                                 decide-retraining
                                                         ┌──(retrain)──────┴──(else)──┐
                          features ─> labels ─> train x3 (ParallelFor)      finalize-period
                          ─> evaluate ─> register + promote ─> deploy
                          ─> finalize-period

``finalize-period`` is the only step that writes the loop's state, and it marks the ledger
last, so a failure anywhere leaves the period pending for the next run. KFP cannot pass an
output from inside a ``dsl.If`` to a task outside it, so each branch ends with its own
``finalize-period``. Tasks that read live state (ledger, champion alias) are not cached.
Every task reads its cluster settings from the Secret and ConfigMap
(:func:`churn_kfp.orchestration.cluster_env.use_cluster_config`), never from parameters.
"""

from kfp import dsl

from churn_kfp.components.deployment import deploy_model
from churn_kfp.components.evaluation import evaluate_models
from churn_kfp.components.features import build_features
from churn_kfp.components.ingestion import ingest_and_validate
from churn_kfp.components.labels import label_churn
from churn_kfp.components.monitoring import (
    check_new_data,
    decide_retraining,
    finalize_period,
    record_skip,
    score_and_monitor,
)
from churn_kfp.components.registration import register_model
from churn_kfp.components.sentiment import score_sentiment
from churn_kfp.components.training import train_model
from churn_kfp.core.config import MODEL_NAME, RETRAINING_PIPELINE
from churn_kfp.orchestration.cluster_env import use_cluster_config
from churn_kfp.pipelines.training import CANDIDATE_MODELS


@dsl.pipeline(
    name=RETRAINING_PIPELINE,
    description="For the next unprocessed period: score with the champion, judge matured "
    "predictions, measure drift (Evidently), retrain and run champion/challenger when "
    "needed, alert, and record the period.",
)
def retraining_pipeline(
    landing_zone: str = "",
    tracking_uri: str = "",
    model_name: str = MODEL_NAME,
    period: str = "",
    run_tag: str = "",
    horizon_days: int = 30,
    eligibility_days: int = 90,
    windows: str = "30,60,90",
    n_train_cutoffs: int = 3,
    n_iter: int = 4,
    seed: int = 42,
    min_f1: float = 0.5,
    min_roc_auc: float = 0.7,
    max_train_test_gap: float = 0.15,
    promotion_margin: float = 0.0,
    retrain_threshold: float = 0.8,
    drift_threshold: float = 0.3,
    prediction_drift_triggers: bool = True,
    retraining_enabled: bool = True,
    force: bool = False,
    drift_columns: str = "",
    webhook_url: str = "",
    deploy_mode: str = "local",
    namespace: str = "",
    candidate_models: list = CANDIDATE_MODELS,  # noqa: B006 - KFP reads the default here
):
    """Processes the next new period (or ``period``); skips in seconds when there is none.

    ``retraining_enabled=False`` is the frozen policy: it monitors and records every period
    but never trains a challenger. ``force=True`` retrains whatever the signals say.
    ``candidate_models`` are trained in parallel, as in the training pipeline.
    """
    checked = check_new_data(
        landing_zone=landing_zone, tracking_uri=tracking_uri, model_name=model_name, period=period
    ).set_display_name("check for new data")
    checked.set_caching_options(False)
    use_cluster_config(checked)

    with dsl.If(checked.outputs["has_new"] == True, name="new-data"):  # noqa: E712
        ingested = ingest_and_validate(landing_zone=landing_zone, until=checked.outputs["period"])
        ingested.set_display_name("ingest + validate").set_caching_options(False)

        sentiment = score_sentiment(feedback=ingested.outputs["feedback"])
        sentiment.set_display_name("feedback sentiment")

        monitored = score_and_monitor(
            transactions=ingested.outputs["transactions"],
            customers=ingested.outputs["customers"],
            scored_feedback=sentiment.outputs["scored_feedback"],
            plan=checked.outputs["plan"],
            tracking_uri=tracking_uri,
            model_name=model_name,
            landing_zone=landing_zone,
            horizon_days=horizon_days,
            eligibility_days=eligibility_days,
            windows=windows,
            drift_columns=drift_columns,
        ).set_display_name("score + performance + drift")
        monitored.set_caching_options(False)

        decided = decide_retraining(
            summary=monitored.outputs["summary"],
            retrain_threshold=retrain_threshold,
            drift_threshold=drift_threshold,
            prediction_drift_triggers=prediction_drift_triggers,
            retraining_enabled=retraining_enabled,
            force=force,
        ).set_display_name("retrain?")
        decided.set_caching_options(False)
        for task in (ingested, sentiment, monitored, decided):
            use_cluster_config(task)

        with dsl.If(decided.outputs["retrain"] == True, name="retrain"):  # noqa: E712
            features = build_features(
                transactions=ingested.outputs["transactions"],
                customers=ingested.outputs["customers"],
                scored_feedback=sentiment.outputs["scored_feedback"],
                horizon_days=horizon_days,
                n_train_cutoffs=n_train_cutoffs,
                eligibility_days=eligibility_days,
                windows=windows,
            ).set_display_name("features (recent cutoffs)")

            labelled = label_churn(
                features=features.outputs["features"],
                transactions=ingested.outputs["transactions"],
                horizon_days=horizon_days,
            ).set_display_name("churn labels")

            with dsl.ParallelFor(items=candidate_models, parallelism=3) as model_type:
                trained = train_model(
                    labelled=labelled.outputs["labelled"],
                    model_type=model_type,
                    n_iter=n_iter,
                    seed=seed,
                ).set_display_name("train challenger")

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
                pipeline_name=RETRAINING_PIPELINE,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                min_f1=min_f1,
                min_roc_auc=min_roc_auc,
                max_train_test_gap=max_train_test_gap,
                promotion_margin=promotion_margin,
            ).set_display_name("champion/challenger")
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

            committed = finalize_period(
                monitoring=monitored.outputs["monitoring"],
                plan=checked.outputs["plan"],
                decision=decided.outputs["decision"],
                registration=registered.outputs["summary"],
                landing_zone=landing_zone,
                tracking_uri=tracking_uri,
                webhook_url=webhook_url,
                pipeline_name=RETRAINING_PIPELINE,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                run_tag=run_tag,
            ).after(deployed)
            committed.set_display_name("alert + commit period").set_caching_options(False)
            for task in (features, labelled, trained, evaluated, registered, deployed, committed):
                use_cluster_config(task)

        with dsl.Else(name="keep-champion"):
            kept = finalize_period(
                monitoring=monitored.outputs["monitoring"],
                plan=checked.outputs["plan"],
                decision=decided.outputs["decision"],
                registration="",
                landing_zone=landing_zone,
                tracking_uri=tracking_uri,
                webhook_url=webhook_url,
                pipeline_name=RETRAINING_PIPELINE,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                run_tag=run_tag,
            )
            kept.set_display_name("alert + commit period").set_caching_options(False)
            use_cluster_config(kept)

    with dsl.Else(name="no-new-data"):
        skipped = record_skip(
            plan=checked.outputs["plan"],
            landing_zone=landing_zone,
            pipeline_name=RETRAINING_PIPELINE,
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_tag=run_tag,
        )
        skipped.set_display_name("record skip").set_caching_options(False)
        use_cluster_config(skipped)
