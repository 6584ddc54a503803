"""Point-in-time features, compression and feature importance (the research step "compression & thesis").

Every feature's value at bar t uses only data known by bar t's close (tests/features/test_point_in_time.py checks
each one on truncated histories). Modules, one concern each:

- panel: `load_panel(store, exchange, symbols, timeframe, since_ms, until_ms, feeds=True, microstructure=False)`,
  `resample_panel(panel, timeframe)`, funding/feeds aligned by the time they became known.
- returns: log returns, z-scores, risk-adjusted momentum, cross-sectional ranks, per-period sampling.
- volatility: close-to-close, Parkinson, Garman-Klass, Yang-Zhang, EWM volatility.
- fracdiff: fixed-width fractional differentiation and `find_min_d` (ADF).
- carry: funding level / annualised / z-score, basis and its z-score.
- microstructure: order-flow imbalance and VPIN from trades, Amihud, spread and depth from book snapshots.
- alt_data: macro, sentiment and on-chain feeds aligned by publication time, regime z-scores.
- compression: PCA (Marcenko-Pastur denoising) and correlation-clustered features, fitted on a training window.
- importance: MDI, MDA with purged k-fold (engine.ml.cv.PurgedKFold), single-feature importance.
- builder: `FeatureSpec` and `build_features(frame, spec)` - the standard set strategies and the meta-model use.
"""
