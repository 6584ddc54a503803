"""ML overlay: triple-barrier labels, purged CV, meta-model, model registry and retraining.

Public API (import from the submodules; nothing heavy is imported here):
- labels: `BarrierSpec(pt_mult, sl_mult, max_holding, vol_span)`, `triple_barrier_events(close, side, spec)`
  -> frame (t1, side, trgt, ret, barrier, label); `.payoff_ratio` = pt_mult / sl_mult.
- weights: `average_uniqueness`, `uniqueness_weights(events, n_bars)`, `return_attribution`, `time_decay`.
- cv: `PurgedKFold(n_splits, t1, embargo_pct)`, `CombinatorialPurgedKFold(n_groups, n_test_groups, t1, embargo_pct)`
  (sklearn splitters: cross_val_score, GridSearchCV, CalibratedClassifierCV).
- dataset: `build_dataset(strategy, panel, spec) -> MetaDataset`, `latest_features(strategy, panel, features)`
  (live model inputs, index = symbol), `micro_features(bars)`, `sim_taker_flow`, `taker_flow_from_trades`.
- meta_model: `train_meta_model(ds, panel, cv_folds, embargo_pct, embargo=...) -> (model, TrainReport)`.
- selection: `required_embargo_bars(strategy, spec)`, `WalkForwardSplit(n_splits, t1, embargo, min_embargo)`,
  `select_model(X, y, w, t1, embargo, ...) -> Selection`, `PastCalibratedModel(family, calibration)`.
- evaluate: `evaluate_walk_forward(ds, panel, strategy, EvalSpec(...)) -> Evaluation` (`.as_json()`).
- evidence: `evidence_from(evaluation, strategy)`, `record_evidence(store, ev)`, `latest_evidence(store, strategy)`,
  `overlay_decision(evidence, floor) -> OverlayDecision(on, reason, hit_rate, payoff)`, `overlay_status(...)`.
- report: `evaluation_text(ev)`, `evaluation_html(ev)`, `evaluation_page(ev)`.
- registry: `ModelRegistry(store, models_dir)` with `save(...)`, `champion(strategy) -> LoadedModel | None`
  (verified), `promote(strategy, version)`, `rollback(strategy)`, `list(strategy=None)`; `LoadedModel.predict_proba(
  features_df) -> ndarray` (checks column names and order) and `.payoff_ratio`; `ModelIntegrityError`.
- retrain: `retrain_job(settings, strategy_name, store=None) -> dict` (scheduler job; audited; alerts and re-raises
  on failure), `train_model(settings, strategy_name, store=None, ..., since=, until=) -> dict` (CLI, any stored
  range), `evaluate_model(settings, strategy_name, ...) -> (Evaluation, OverlayEvidence)`, `models_dir(settings)`.
"""
