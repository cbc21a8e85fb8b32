# Reference numbers for the fast mixed-model engine (stepanalytics.lmm).
#
# Fits each case with lme4 + lmerTest at tight optimiser tolerances and writes
# every number the tests compare to lmm_reference.json.  Run from this folder:
#
#     Rscript lmm_reference.R
#
# Data: sleepstudy (lme4, written to sleepstudy.csv here), dietox.csv (copied
# from statsmodels' test folder; Lauridsen et al. 1999 via geepack), and the
# synthetic nested.csv / singular.csv written by make_reference_data.py.
# Produced with R 4.x, lme4 1.1-31 and lmerTest 3.1-3.

suppressMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

write.csv(lme4::sleepstudy, "sleepstudy.csv", row.names = FALSE)
data_sets <- list(
  sleepstudy = read.csv("sleepstudy.csv"),
  dietox = read.csv("dietox.csv"),
  nested = read.csv("nested.csv"),
  singular = read.csv("singular.csv")
)

# Tight tolerances: the default nloptwrap stops at ftol_abs = 1e-8, which leaves
# the variance parameters uncertain in the 5th digit; the tests compare at 1e-5.
# Each model is fitted with two optimisers and the lower criterion is kept.
tight <- list(
  lmerControl(optimizer = "nloptwrap",
              optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12,
                             ftol_rel = 1e-15, maxeval = 1e5)),
  lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
)

fit_best <- function(formula, data, reml) {
  fits <- lapply(tight, function(ctrl) {
    suppressMessages(lmerTest::lmer(formula, data = data, REML = reml, control = ctrl))
  })
  crit <- sapply(fits, function(f) -2 * as.numeric(logLik(f)))
  fits[[which.min(crit)]]
}

cases <- list(
  list(name = "sleepstudy_ri", data = "sleepstudy",
       formula = Reaction ~ Days + (1 | Subject)),
  list(name = "sleepstudy_rs", data = "sleepstudy",
       formula = Reaction ~ Days + (Days | Subject)),
  list(name = "dietox_rs", data = "dietox",
       formula = Weight ~ Time + (Time | Pig)),
  list(name = "dietox_quad", data = "dietox",
       formula = Weight ~ Time + I(Time^2) + (Time + I(Time^2) | Pig),
       contrast = c(1, 10, 100)),
  list(name = "nested", data = "nested",
       formula = score ~ weeks + (weeks | patient_id) + (1 | clinic_id),
       contrast = c(1, 8), fitted = TRUE),
  list(name = "singular", data = "singular",
       formula = score ~ weeks + (weeks | patient_id))
)

named <- function(x) as.list(setNames(as.numeric(x), names(x)))

ranef_list <- function(re) {
  # One entry per level: the conditional modes in the order of the terms.
  out <- lapply(seq_len(nrow(re)), function(i) as.numeric(re[i, ]))
  names(out) <- rownames(re)
  out
}

describe <- function(case, reml) {
  data <- data_sets[[case$data]]
  fit <- fit_best(case$formula, data, reml)
  coefs <- summary(fit)$coefficients
  vc <- VarCorr(fit)
  groups <- names(vc)
  patient_group <- groups[which.max(sapply(groups, function(g) nrow(vc[[g]])))]
  patient_vc <- vc[[patient_group]]
  re <- ranef(fit)
  clinic_group <- setdiff(groups, patient_group)
  ll <- logLik(fit)
  # 90% t intervals with Satterthwaite df, one per coefficient (fit_lmm(level = 0.9)).
  ci90 <- lmerTest::contest(fit, L = diag(length(fixef(fit))), joint = FALSE,
                            confint = TRUE, level = 0.90)
  list(
    name = paste0(case$name, if (reml) "_reml" else "_ml"),
    data = case$data,
    formula = paste(deparse(case$formula), collapse = " "),
    reml = reml,
    n_obs = nobs(fit),
    fixef = named(fixef(fit)),
    std_error = named(coefs[, "Std. Error"]),
    df = named(coefs[, "df"]),
    ci90_lower = as.numeric(ci90$lower),
    ci90_upper = as.numeric(ci90$upper),
    vcov = unname(as.matrix(vcov(fit))),
    theta = unname(getME(fit, "theta")),
    patient_group = patient_group,
    z_names = colnames(patient_vc),
    patient_sd = unname(attr(patient_vc, "stddev")),
    patient_corr = unname(attr(patient_vc, "correlation")),
    clinic_sd = if (length(clinic_group)) unname(attr(vc[[clinic_group]], "stddev")) else NULL,
    sigma = sigma(fit),
    loglik = as.numeric(ll),
    deviance = -2 * as.numeric(ll),
    reml_crit = if (reml) REMLcrit(fit) else NULL,
    aic = AIC(fit),
    bic = BIC(fit),
    singular = isSingular(fit),
    ranef_patient = ranef_list(re[[patient_group]]),
    ranef_clinic = if (length(clinic_group)) ranef_list(re[[clinic_group]]) else NULL,
    # Conditional fitted values X beta + Z b + c, in data row order.
    fitted = if (isTRUE(case$fitted)) unname(fitted(fit)) else NULL,
    contrast = if (is.null(case$contrast)) NULL else list(
      L = case$contrast,
      result = as.list(lmerTest::contest(fit, L = case$contrast, joint = FALSE))
    )
  )
}

results <- list()
for (case in cases) {
  for (reml in c(TRUE, FALSE)) {
    entry <- describe(case, reml)
    results[[entry$name]] <- entry
  }
}
results$versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest"))
)
write_json(results, "lmm_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           null = "null")
cat("wrote lmm_reference.json with", length(cases) * 2, "fits\n")
