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
# Fits use lmer()'s default optimizer with a tighter stopping rule, so that the
# numbers are the optimum itself rather than "close to it"; the tight and the
# default fit are printed side by side as a check.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

tight <- lmerControl(optimizer = "bobyqa",
                     optCtrl = list(rhobeg = 2e-3, rhoend = 1e-10, maxfun = 1e5),
                     check.conv.singular = "ignore")

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
  default_fit <- lmer(formula, data = data, REML = reml)
  tight_fit <- lmer(formula, data = data, REML = reml, control = tight)
  cat(sprintf("%-45s REML=%-5s loglik default %.6f tight %.6f\n",
              deparse(formula), reml, logLik(default_fit), logLik(tight_fit)))
  tight_fit
}

lrt_row <- function(small, large, refit) {
  a <- anova(small, large, refit = refit)
  list(refit = refit, loglik_small = a$logLik[1], loglik_large = a$logLik[2],
       chisq = a$Chisq[2], df = a$Df[2], p_value = a$`Pr(>Chisq)`[2])
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
# random-effects comparison on the same fixed effects: REML fits are comparable
lrt$sleep_random_slope_reml <- lrt_row(
  lmer(Reaction ~ Days + (1 | Subject), sleep, REML = TRUE, control = tight),
  lmer(Reaction ~ Days + (Days | Subject), sleep, REML = TRUE, control = tight),
  refit = FALSE)
# fixed-effects comparison: anova() refits both by ML
lrt$sleep_days_fixed <- lrt_row(
  lmer(Reaction ~ 1 + (Days | Subject), sleep, REML = TRUE, control = tight),
  lmer(Reaction ~ Days + (Days | Subject), sleep, REML = TRUE, control = tight),
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
    lmer(score ~ weeks + (weeks | patient_id), synth, REML = TRUE, control = tight),
    lmer(score ~ weeks * clinic_id + (weeks | patient_id), synth, REML = TRUE, control = tight),
    refit = TRUE)
  lrt$synth_random_slope_reml <- lrt_row(m_int, m_default, refit = FALSE)
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
