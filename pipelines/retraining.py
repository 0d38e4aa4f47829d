"""The retraining pipeline: one run per new period, monitoring first, retraining when needed.

Graph::

    check-new-data ──(has_new)──> ingest + validate ─> sentiment ─> score-and-monitor
         │                                                                 │
         └──(else)──> record-skip                                 decide-retraining
                                                         ┌──(retrain)──────┴──(else)──┐
                                    train-and-register (sub-pipeline)      finalize-period
                                    ─> finalize-period

``train-and-register`` (:mod:`churn_kfp.pipelines.train_and_register`) is the training
pipeline's own chain: features, labels, challengers trained in parallel, evaluation,
champion/challenger and deployment. ``finalize-period`` is the only step that writes the
loop's state, and it marks the ledger last, so a failure anywhere leaves the period pending
for the next run. KFP cannot pass an output from inside a ``dsl.If`` to a task outside it,
so each branch ends with its own ``finalize-period``. Tasks that read live state (ledger,
champion alias) are not cached.
Every task reads its cluster settings from the Secret and ConfigMap
(:func:`churn_kfp.orchestration.cluster_env.use_cluster_config`), never from parameters.
"""

from kfp import dsl

from churn_kfp.components.ingestion import ingest_and_validate
from churn_kfp.components.monitoring import (
    check_new_data,
    decide_retraining,
    finalize_period,
    record_skip,
    score_and_monitor,
)
from churn_kfp.components.sentiment import score_sentiment
from churn_kfp.core.config import MODEL_NAME, RETRAINING_PIPELINE
from churn_kfp.core.protocol import RETRAINING_PROTOCOL
from churn_kfp.orchestration.cluster_env import use_cluster_config
from churn_kfp.orchestration.spark_app import AUTO_SPARK_BYTES
from churn_kfp.pipelines.train_and_register import train_and_register

__all__ = ["retraining_pipeline"]


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
    horizon_days: int = RETRAINING_PROTOCOL.horizon_days,
    eligibility_days: int = RETRAINING_PROTOCOL.eligibility_days,
    windows: str = RETRAINING_PROTOCOL.windows,
    n_train_cutoffs: int = RETRAINING_PROTOCOL.n_train_cutoffs,
    n_iter: int = RETRAINING_PROTOCOL.n_iter,
    validation_folds: int = RETRAINING_PROTOCOL.validation_folds,
    recency_half_life: float = RETRAINING_PROTOCOL.recency_half_life,
    seed: int = RETRAINING_PROTOCOL.seed,
    min_f1: float = RETRAINING_PROTOCOL.min_f1,
    min_roc_auc: float = RETRAINING_PROTOCOL.min_roc_auc,
    max_train_test_gap: float = RETRAINING_PROTOCOL.max_train_test_gap,
    promotion_margin: float = RETRAINING_PROTOCOL.promotion_margin,
    retrain_threshold: float = RETRAINING_PROTOCOL.retrain_threshold,
    drift_threshold: float = RETRAINING_PROTOCOL.drift_threshold,
    prediction_drift_triggers: bool = RETRAINING_PROTOCOL.prediction_drift_triggers,
    performance_drop: float = RETRAINING_PROTOCOL.performance_drop,
    drift_persistence: int = RETRAINING_PROTOCOL.drift_persistence,
    drift_effect_floor: float = RETRAINING_PROTOCOL.drift_effect_floor,
    backoff_periods: int = RETRAINING_PROTOCOL.backoff_periods,
    retraining_enabled: bool = True,
    force: bool = False,
    reprocess: bool = False,
    drift_columns: str = "",
    webhook_url: str = "",
    deploy_mode: str = "cluster",
    namespace: str = "",
    canary_percent: int = 0,
    feature_engine: str = "auto",
    spark_threshold_bytes: int = AUTO_SPARK_BYTES,
    # KFP reads the default from the signature: a list, not the protocol's tuple.
    candidate_models: list = list(RETRAINING_PROTOCOL.candidate_models),  # noqa: B006
):
    """Processes the next new period (or ``period``); skips in seconds when there is none.

    ``retraining_enabled=False`` is the frozen policy: it monitors and records every period
    but never trains a challenger. ``force=True`` retrains whatever the signals say.
    ``reprocess=True`` processes a period a run already committed although the ledger
    does not list it (a lost ledger); without it such a run is refused.
    ``candidate_models`` are trained in parallel, as in the training pipeline. A promoted
    challenger is applied with KServe (``canary_percent`` of the traffic first);
    ``deploy_mode="local"`` only writes its manifest (the default of local runs).
    """
    checked = check_new_data(
        landing_zone=landing_zone,
        tracking_uri=tracking_uri,
        model_name=model_name,
        period=period,
        reprocess=reprocess,
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
            performance_drop=performance_drop,
            drift_persistence=drift_persistence,
            drift_effect_floor=drift_effect_floor,
            backoff_periods=backoff_periods,
        ).set_display_name("retrain?")
        decided.set_caching_options(False)
        for task in (ingested, sentiment, monitored, decided):
            use_cluster_config(task)

        with dsl.If(decided.outputs["retrain"] == True, name="retrain"):  # noqa: E712
            trained = train_and_register(
                transactions=ingested.outputs["transactions"],
                customers=ingested.outputs["customers"],
                scored_feedback=sentiment.outputs["scored_feedback"],
                quality_report=ingested.outputs["quality_report"],
                tracking_uri=tracking_uri,
                model_name=model_name,
                pipeline_name=RETRAINING_PIPELINE,
                horizon_days=horizon_days,
                n_train_cutoffs=n_train_cutoffs,
                eligibility_days=eligibility_days,
                windows=windows,
                candidate_models=candidate_models,
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
            ).set_display_name("train challengers + champion/challenger")

            # The sub-pipeline ends after its deploy step, so the commit follows it.
            committed = finalize_period(
                monitoring=monitored.outputs["monitoring"],
                plan=checked.outputs["plan"],
                decision=decided.outputs["decision"],
                registration=trained.output,
                landing_zone=landing_zone,
                tracking_uri=tracking_uri,
                webhook_url=webhook_url,
                pipeline_name=RETRAINING_PIPELINE,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                run_tag=run_tag,
            )
            committed.set_display_name("alert + commit period").set_caching_options(False)
            use_cluster_config(committed)

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
