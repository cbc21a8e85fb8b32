# Reference numbers for stepanalytics.trajectories, produced with lme4 + lmerTest.
#
# Run from this folder:   Rscript lme4_reference.R
# Writes lme4_reference.json, which tests/trajectories/test_*_vs_lme4.py read.
# R stays out of CI: the JSON is committed next to this script.
#
# Data (all public or synthetic, small):
#   sleepstudy.csv      lme4::sleepstudy (Belenky et al. 2003), written by
#                       write.csv(sleepstudy[, c("Subject", "Days", "Reaction")])
#   dietox.csv          pig growth data (geepack::dietox; the copy shipped in
#                       statsmodels' test folder), without its row-name column
#   synthetic_cohort.csv  long table from stepanalytics.synth (seed and call in
#                       make_synthetic_cohort.py); written before this script runs
#
# Every model is fitted with bobyqa and with nloptwrap at tight stopping rules and
# the higher likelihood is kept, so that the numbers are the optimum itself
# (to about 1e-7) rather than "close to it"; the default fit is printed beside it
# as a check.  The fast engine is compared at 1e-5 relative, statsmodels at 1e-4.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

tight_controls <- list(
  lmerControl(optimizer = "bobyqa",
              optCtrl = list(rhobeg = 2e-3, rhoend = 1e-10, maxfun = 1e5),
              check.conv.singular = "ignore"),
  lmerControl(optimizer = "nloptwrap",
              optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12,
                             ftol_rel = 1e-15, maxeval = 1e5),
              check.conv.singular = "ignore")
)

# Both optimizers stop with a deviance gradient of about 1e-3; along a flat
# direction (a clinic SD from 5 clinics) that leaves the 5th digit of an SD
# open.  So the better fit is refined by Newton steps on lme4's own deviance
# function (numDeriv gradient and Hessian; parameters at a bound stay there),
# and lmer() is re-run from the refined theta with an "optimizer" that keeps it,
# so that every reported number (lmerTest's df included) belongs to that theta.
keep_start <- function(par, fn, lower, upper, control) {
  list(par = par, fval = fn(par), conv = 0, message = "Newton-refined start kept")
}

newton_refine <- function(formula, data, reml, theta, lower) {
  devfun <- do.call(mkLmerDevfun, lFormula(formula, data = data, REML = reml))
  for (i in 1:6) {
    g <- numDeriv::grad(devfun, theta)
    h <- numDeriv::hessian(devfun, theta)
    free <- !(theta <= lower & g > 0)
    step <- solve(h[free, free, drop = FALSE], g[free])
    trial <- theta
    trial[free] <- theta[free] - step
    trial <- pmax(trial, lower)
    if (devfun(trial) >= devfun(theta)) break
    theta <- trial
  }
  theta
}

fit_tight <- function(formula, data, reml) {
  fits <- lapply(tight_controls, function(ctrl) {
    suppressMessages(lmer(formula, data = data, REML = reml, control = ctrl))
  })
  best <- fits[[which.max(sapply(fits, function(f) as.numeric(logLik(f))))]]
  theta <- newton_refine(formula, data, reml, unname(getME(best, "theta")),
                         getME(best, "lower"))
  refined <- lmer(formula, data = data, REML = reml, start = list(theta = theta),
                  control = lmerControl(optimizer = keep_start, calc.derivs = FALSE,
                                        check.conv.singular = "ignore"))
  if (as.numeric(logLik(refined)) < as.numeric(logLik(best))) best else refined
}

describe_fit <- function(fit, data_file, formula_text, contrasts = list()) {
  s <- summary(fit)                      # lmerTest summary: Satterthwaite df
  coefs <- s$coefficients
  vc <- as.data.frame(VarCorr(fit), order = "lower.tri")
  re_rows <- vc[vc$grp != "Residual", ]
  sds <- re_rows[is.na(re_rows$var2), ]
  cors <- re_rows[!is.na(re_rows$var2), ]
  reml <- isREML(fit)
  out <- list(
    data = data_file,
    formula = formula_text,
    reml = reml,
    nobs = nobs(fit),
    ngroups = as.integer(ngrps(fit)[1]),
    fixed = data.frame(
      term = rownames(coefs),
      estimate = unname(coefs[, "Estimate"]),
      std_error = unname(coefs[, "Std. Error"]),
      df = unname(coefs[, "df"]),
      t_value = unname(coefs[, "t value"]),
      p_value = unname(coefs[, "Pr(>|t|)"])
    ),
    sd = data.frame(term = sds$var1, sd = sds$sdcor),
    corr = data.frame(term1 = cors$var1, term2 = cors$var2, corr = cors$sdcor),
    sigma = sigma(fit),
    theta = unname(getME(fit, "theta")),
    loglik = as.numeric(logLik(fit)),
    criterion = if (reml) unname(getME(fit, "devcomp")$cmp["REML"]) else deviance(fit),
    aic = AIC(fit),
    bic = BIC(fit),
    is_singular = isSingular(fit)
  )
  if (length(contrasts) > 0) {
    out$contrasts <- lapply(contrasts, function(L) {
      L <- matrix(L, nrow = if (is.matrix(L)) nrow(L) else 1)
      if (nrow(L) == 1) {
        ct <- contest(fit, L, joint = FALSE, ddf = "Satterthwaite")
        list(L = L, estimate = ct$Estimate, std_error = ct$`Std. Error`,
             df = ct$df, t_value = ct$`t value`, p_value = ct$`Pr(>|t|)`)
      } else {
        ct <- contest(fit, L, joint = TRUE, ddf = "Satterthwaite")
        list(L = L, f_value = ct$`F value`, num_df = ct$NumDF, den_df = ct$DenDF,
             p_value = ct$`Pr(>F)`)
      }
    })
  }
  out
}

fit_both <- function(formula, data, reml) {
  default_fit <- suppressMessages(lmer(formula, data = data, REML = reml))
  tight_fit <- fit_tight(formula, data, reml)
  cat(sprintf("%-45s REML=%-5s loglik default %.6f tight %.6f\n",
              deparse(formula), reml, logLik(default_fit), logLik(tight_fit)))
  tight_fit
}

# boundary = TRUE for a test of one added random-effect variance (and its
# covariances): the null distribution is then a 50:50 mixture of chi2(df - 1)
# and chi2(df) (Self & Liang 1987; Stram & Lee 1994), whose p-value is added
# (pchisq with df = 0 is the point mass at 0).
lrt_row <- function(small, large, refit, boundary = FALSE) {
  a <- anova(small, large, refit = refit)
  row <- list(refit = refit, loglik_small = a$logLik[1], loglik_large = a$logLik[2],
              chisq = a$Chisq[2], df = a$Df[2], p_value = a$`Pr(>Chisq)`[2])
  if (boundary) {
    row$p_mixture <- 0.5 * pchisq(row$chisq, row$df - 1, lower.tail = FALSE) +
      0.5 * pchisq(row$chisq, row$df, lower.tail = FALSE)
  }
  row
}

models <- list()
lrt <- list()

# sleepstudy --------------------------------------------------------------
sleep <- read.csv("sleepstudy.csv", colClasses = c(Subject = "character"))
for (reml in c(TRUE, FALSE)) {
  tag <- if (reml) "reml" else "ml"
  f_int <- Reaction ~ Days + (1 | Subject)
  f_slope <- Reaction ~ Days + (Days | Subject)
  m_int <- fit_both(f_int, sleep, reml)
  m_slope <- fit_both(f_slope, sleep, reml)
  models[[paste0("sleep_intercept_", tag)]] <- describe_fit(
    m_int, "sleepstudy.csv", "Reaction ~ Days + (1 | Subject)", list(c(1, 5)))
  models[[paste0("sleep_slope_", tag)]] <- describe_fit(
    m_slope, "sleepstudy.csv", "Reaction ~ Days + (Days | Subject)",
    list(c(1, 5), c(0, 1), rbind(c(1, 0), c(0, 1))))
  # conditional modes (BLUPs) per subject, as ranef() gives them
  re <- ranef(m_slope)$Subject
  models[[paste0("sleep_slope_", tag)]]$ranef <- data.frame(
    Subject = rownames(re), intercept = re[, "(Intercept)"], slope = re[, "Days"])
}
# uncorrelated random intercept and slope, lme4's ||: fit_mixed_model(...,
# re_covariance = "diagonal"); only the statsmodels engine fits it
for (reml in c(TRUE, FALSE)) {
  tag <- if (reml) "reml" else "ml"
  m_diag <- fit_both(Reaction ~ Days + (Days || Subject), sleep, reml)
  models[[paste0("sleep_diagonal_", tag)]] <- describe_fit(
    m_diag, "sleepstudy.csv", "Reaction ~ Days + (Days || Subject)", list(c(1, 5)))
}
# random-effects comparison on the same fixed effects: REML fits are comparable
lrt$sleep_random_slope_reml <- lrt_row(
  fit_tight(Reaction ~ Days + (1 | Subject), sleep, TRUE),
  fit_tight(Reaction ~ Days + (Days | Subject), sleep, TRUE),
  refit = FALSE, boundary = TRUE)
# fixed-effects comparison: anova() refits both by ML
lrt$sleep_days_fixed <- lrt_row(
  fit_tight(Reaction ~ 1 + (Days | Subject), sleep, TRUE),
  fit_tight(Reaction ~ Days + (Days | Subject), sleep, TRUE),
  refit = TRUE)

# dietox ------------------------------------------------------------------
dietox <- read.csv("dietox.csv")
dietox$Pig <- factor(dietox$Pig)
for (reml in c(TRUE, FALSE)) {
  tag <- if (reml) "reml" else "ml"
  m <- fit_both(Weight ~ Time + (Time | Pig), dietox, reml)
  models[[paste0("dietox_slope_", tag)]] <- describe_fit(
    m, "dietox.csv", "Weight ~ Time + (Time | Pig)", list(c(1, 6)))
}
# between-pig factor: Satterthwaite df differ clearly from the residual df
dietox$Evit <- factor(dietox$Evit)
m_evit <- fit_both(Weight ~ Time * Evit + (Time | Pig), dietox, TRUE)
models$dietox_evit_reml <- describe_fit(
  m_evit, "dietox.csv", "Weight ~ Time * Evit + (Time | Pig)",
  list(c(0, 1, 0, 0, 1, 0), rbind(c(0, 0, 0, 0, 1, 0), c(0, 0, 0, 0, 0, 1))))

# synthetic cohort ----------------------------------------------------------
if (file.exists("synthetic_cohort.csv")) {
  synth <- read.csv("synthetic_cohort.csv",
                    colClasses = c(patient_id = "character", clinic_id = "character"))
  # Reference clinic: the one with most patients (as fit_trajectory(compare = "clinic")).
  per_clinic <- table(unique(synth[, c("patient_id", "clinic_id")])$clinic_id)
  largest <- names(per_clinic)[which.max(per_clinic)]
  synth$clinic_id <- relevel(factor(synth$clinic_id), ref = largest)
  m_default <- fit_both(score ~ weeks + (weeks | patient_id), synth, TRUE)
  models$synth_default_reml <- describe_fit(
    m_default, "synthetic_cohort.csv", "score ~ weeks + (weeks | patient_id)", list(c(1, 12)))
  m_default_ml <- fit_both(score ~ weeks + (weeks | patient_id), synth, FALSE)
  models$synth_default_ml <- describe_fit(
    m_default_ml, "synthetic_cohort.csv", "score ~ weeks + (weeks | patient_id)")
  m_diag <- fit_both(score ~ weeks + (weeks || patient_id), synth, TRUE)
  models$synth_diagonal_reml <- describe_fit(
    m_diag, "synthetic_cohort.csv", "score ~ weeks + (weeks || patient_id)")
  m_int <- fit_both(score ~ weeks + (1 | patient_id), synth, TRUE)
  models$synth_intercept_reml <- describe_fit(
    m_int, "synthetic_cohort.csv", "score ~ weeks + (1 | patient_id)")
  m_comp <- fit_both(score ~ weeks + compensation_claim + (weeks | patient_id), synth, TRUE)
  models$synth_compensation_reml <- describe_fit(
    m_comp, "synthetic_cohort.csv", "score ~ weeks + compensation_claim + (weeks | patient_id)")
  phase_terms <- c(grep("^weeks_phase", names(synth), value = TRUE), "weeks_outside_phases")
  f_piece <- as.formula(paste("score ~", paste(phase_terms, collapse = " + "),
                              "+ (weeks | patient_id)"))
  m_piece <- fit_both(f_piece, synth, TRUE)
  models$synth_piecewise_reml <- describe_fit(
    m_piece, "synthetic_cohort.csv", paste(deparse(f_piece), collapse = ""))
  m_clinic <- fit_both(score ~ weeks * clinic_id + (weeks | patient_id), synth, TRUE)
  clinic_terms <- grep("^weeks:clinic_id", names(fixef(m_clinic)))
  joint <- t(sapply(clinic_terms, function(i) replace(numeric(length(fixef(m_clinic))), i, 1)))
  models$synth_clinic_reml <- describe_fit(
    m_clinic, "synthetic_cohort.csv", "score ~ weeks * clinic_id + (weeks | patient_id)",
    list(joint))
  models$synth_clinic_reml$reference_clinic <- largest
  lrt$synth_clinic_fixed <- lrt_row(
    fit_tight(score ~ weeks + (weeks | patient_id), synth, TRUE),
    fit_tight(score ~ weeks * clinic_id + (weeks | patient_id), synth, TRUE),
    refit = TRUE)
  lrt$synth_random_slope_reml <- lrt_row(m_int, m_default, refit = FALSE, boundary = TRUE)
  # weeks is the sum of the phase clocks, so the straight line is nested in the
  # piecewise model: do the phase slopes differ? (fixed effects: refit by ML)
  lrt$synth_piecewise_fixed <- lrt_row(m_default, m_piece, refit = TRUE)

  # Patients nested in clinics: a clinic random intercept (fit_trajectory(...,
  # clinic_effect = "random"); only the fast engine fits it).
  f_nested <- score ~ weeks + (weeks | patient_id) + (1 | clinic_id)
  for (reml in c(TRUE, FALSE)) {
    tag <- if (reml) "reml" else "ml"
    m_nested <- fit_both(f_nested, synth, reml)
    key <- paste0("synth_nested_", tag)
    models[[key]] <- describe_fit(
      m_nested, "synthetic_cohort.csv", "score ~ weeks + (weeks | patient_id) + (1 | clinic_id)",
      list(c(1, 12)))
    models[[key]]$clinic_sd <- attr(VarCorr(m_nested)$clinic_id, "stddev")[[1]]
    re_clinic <- ranef(m_nested)$clinic_id
    models[[key]]$ranef_clinic <- data.frame(
      clinic_id = rownames(re_clinic), intercept = re_clinic[, "(Intercept)"])
    re_patient <- ranef(m_nested)$patient_id
    models[[key]]$ranef <- data.frame(
      patient_id = rownames(re_patient), intercept = re_patient[, "(Intercept)"],
      slope = re_patient[, "weeks"])
  }
  f_nested_comp <- score ~ weeks + compensation_claim + (weeks | patient_id) + (1 | clinic_id)
  m_nested_comp <- fit_both(f_nested_comp, synth, TRUE)
  models$synth_nested_compensation_reml <- describe_fit(
    m_nested_comp, "synthetic_cohort.csv",
    "score ~ weeks + compensation_claim + (weeks | patient_id) + (1 | clinic_id)")
  models$synth_nested_compensation_reml$clinic_sd <-
    attr(VarCorr(m_nested_comp)$clinic_id, "stddev")[[1]]
  # Is there a clinic random intercept? Same fixed effects, so REML fits compare.
  lrt$synth_clinic_random_reml <- lrt_row(
    m_default, fit_tight(f_nested, synth, TRUE), refit = FALSE, boundary = TRUE)
}

meta <- list(
  r_version = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  script = "lme4_reference.R"
)
write_json(list(meta = meta, models = models, lrt = lrt), "lme4_reference.json",
           digits = NA, auto_unbox = TRUE, pretty = TRUE, dataframe = "rows")
cat("wrote lme4_reference.json\n")
