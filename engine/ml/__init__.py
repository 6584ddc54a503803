"""ML overlay: triple-barrier labels, purged CV, meta-model, model registry and retraining.

Public API (import from the submodules; nothing heavy is imported here):
- labels: `BarrierSpec(pt_mult, sl_mult, max_holding, vol_span)`, `triple_barrier_events(close, side, spec)`
  -> frame (t1, side, trgt, ret, barrier, label); `.payoff_ratio` = pt_mult / sl_mult.
- weights: `average_uniqueness`, `uniqueness_weights(events, n_bars)`, `return_attribution`, `time_decay`.
- cv: `PurgedKFold(n_splits, t1, embargo_pct)`, `CombinatorialPurgedKFold(n_groups, n_test_groups, t1, embargo_pct)`
  (sklearn splitters: cross_val_score, GridSearchCV, CalibratedClassifierCV).
- dataset: `build_dataset(strategy, panel, spec) -> MetaDataset`, `latest_features(strategy, panel, features)`
  (live model inputs, index = symbol), `micro_features(bars)`, `sim_taker_flow`, `taker_flow_from_trades`.
- meta_model: `train_meta_model(ds, panel, cv_folds, embargo_pct) -> (Pipeline, TrainReport)`.
- registry: `ModelRegistry(store, models_dir)` with `save(...)`, `champion(strategy) -> LoadedModel | None`
  (verified), `promote(strategy, version)`, `rollback(strategy)`, `list(strategy=None)`; `LoadedModel.predict_proba(
  features_df) -> ndarray` (checks column names and order) and `.payoff_ratio`; `ModelIntegrityError`.
- retrain: `retrain_job(settings, strategy_name, store=None) -> dict` (scheduler job; audited; alerts and re-raises
  on failure), `train_model(settings, strategy_name, store=None, ...) -> dict` (CLI), `models_dir(settings)`.
"""
