# Reference numbers for tests/progression, from R survival and cmprsk.
#
# Run from the repository root (R stays out of CI; the outputs are committed):
#   Rscript tests/progression/reference/survival_reference.R
#
# Inputs (all in this folder, public or synthetic data):
#   rossi.csv            Rossi et al. (1980) recidivism data as shipped by lifelines,
#                        plus `grp` (id modulo 40, an artificial cluster) for robust SEs
#   mgus2.csv            written by this script from survival::mgus2 (Kyle et al. 2002)
#   tiny_km.csv          written by this script: hand-made data for the median rules
#   synthetic_stays.csv  written by tests/progression/reference/make_synthetic.py
#   synthetic_msm.csv    idem: counting-process rows of the multi-state model
# Outputs: reference_*.json / reference_*.csv next to this script.
#
# Versions used for the committed outputs are written to reference_versions.json.

suppressPackageStartupMessages({
  library(survival)
  library(cmprsk)
  library(jsonlite)
})

here <- "tests/progression/reference"
out <- function(name) file.path(here, name)
write_json_full <- function(x, name) {
  writeLines(toJSON(x, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out(name))
}
write_csv_full <- function(x, name) {
  # 15 significant digits, compact: the tests compare at 1e-6 and better.
  x[] <- lapply(x, function(col) {
    if (!is.numeric(col)) return(col)
    ifelse(is.na(col), NA, sprintf("%.15g", col))
  })
  write.csv(x, out(name), row.names = FALSE, na = "")
}

write_json_full(list(
  R = R.version.string,
  survival = as.character(packageVersion("survival")),
  cmprsk = as.character(packageVersion("cmprsk"))
), "reference_versions.json")

# ---------------------------------------------------------------- Cox: rossi
rossi <- read.csv(out("rossi.csv"))
rossi$prio_band <- cut(rossi$prio, c(-1, 0, 3, Inf), labels = c("none", "few", "many"))
rossi$prio_band <- factor(as.character(rossi$prio_band))  # alphabetical levels: few, many, none
write.csv(rossi[, c("id", "prio_band")], out("rossi_prio_band.csv"), row.names = FALSE)

cox_entry <- function(fit, zph) {
  s <- summary(fit)
  list(
    terms = names(coef(fit)),
    coef = unname(coef(fit)),
    se = unname(sqrt(diag(fit$naive.var %||% fit$var))),
    robust_se = if (is.null(fit$naive.var)) NULL else unname(sqrt(diag(fit$var))),
    loglik = fit$loglik[2],
    n_events = fit$nevent,
    zph_terms = rownames(zph$table),
    zph_chisq = unname(zph$table[, "chisq"]),
    zph_df = unname(zph$table[, "df"]),
    zph_p = unname(zph$table[, "p"])
  )
}
`%||%` <- function(a, b) if (is.null(a)) b else a

f_plain <- coxph(Surv(week, arrest) ~ fin + age + prio, data = rossi, ties = "efron")
f_robust <- coxph(Surv(week, arrest) ~ fin + age + prio, data = rossi, ties = "efron",
                  robust = TRUE)
f_cluster <- coxph(Surv(week, arrest) ~ fin + age + prio, data = rossi, ties = "efron",
                   cluster = grp)
f_strata <- coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = rossi,
                  ties = "efron", cluster = grp)
f_factor <- coxph(Surv(week, arrest) ~ fin + age + prio_band, data = rossi, ties = "efron")
f_full <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = rossi,
                ties = "efron")
# Delayed entry (left truncation): an artificial entry week, a third of the way in.
rossi$entry <- floor(rossi$week / 3)
f_entry <- coxph(Surv(entry, week, arrest) ~ fin + age + prio, data = rossi, ties = "efron",
                 cluster = grp)

write_json_full(list(
  plain = cox_entry(f_plain, cox.zph(f_plain)),
  full = cox_entry(f_full, cox.zph(f_full)),
  robust = cox_entry(f_robust, cox.zph(f_robust)),
  cluster = cox_entry(f_cluster, cox.zph(f_cluster)),
  strata_cluster = cox_entry(f_strata, cox.zph(f_strata)),
  factor = cox_entry(f_factor, cox.zph(f_factor)),
  entry_cluster = cox_entry(f_entry, cox.zph(f_entry)),
  zph_identity = unname(cox.zph(f_plain, transform = "identity")$table[, "chisq"])
), "reference_cox_rossi.json")

score <- residuals(f_plain, type = "score")
write_csv_full(data.frame(id = rossi$id, score), "reference_cox_rossi_score.csv")

# ------------------------------------------------ competing risks: mgus2
mg <- survival::mgus2[, c("id", "sex", "age", "ptime", "pstat", "futime", "death")]
mg$etime <- with(mg, ifelse(pstat == 0, futime, ptime))
mg$event <- with(mg, ifelse(pstat == 0, 2 * death, 1))
write.csv(mg, out("mgus2.csv"), row.names = FALSE)
mg$event_f <- factor(mg$event, 0:2, labels = c("censor", "pcm", "death"))

times <- c(120, 240, 360)
ms <- survfit(Surv(etime, event_f) ~ 1, data = mg)
sm <- summary(ms, times = times)
ci <- cuminc(mg$etime, mg$event, cencode = 0)
tp <- timepoints(ci, times)
ms_sex <- survfit(Surv(etime, event_f) ~ sex, data = mg)
sm_sex <- summary(ms_sex, times = times)
write_json_full(list(
  times = times,
  states = ms$states,
  pstate = sm$pstate,        # rows: times; columns: states (pcm, death, (s0))
  std_err = sm$std.err,
  lower = sm$lower,
  upper = sm$upper,
  cuminc_est = tp$est,       # rows: "1 1" (pcm), "1 2" (death)
  cuminc_var = tp$var,
  by_sex = list(strata = as.character(sm_sex$strata), time = sm_sex$time,
                pstate = sm_sex$pstate, std_err = sm_sex$std.err),
  rmean_360 = unname(summary(ms, rmean = 360)$table[, "rmean"]),
  rmean_states = rownames(summary(ms, rmean = 360)$table)
), "reference_cif_mgus2.json")
curve <- data.frame(time = ms$time, n_risk = ms$n.risk[, 1], ms$pstate, ms$std.err)
names(curve) <- c("time", "n_risk", paste0("p_", ms$states), paste0("se_", ms$states))
write_csv_full(curve, "reference_cif_mgus2_curve.csv")

# -------------------------------------------------- Kaplan-Meier, log-rank
km_table <- function(fit, conf_type) {
  strata <- if (is.null(fit$strata)) rep("all", length(fit$time)) else
    rep(names(fit$strata), fit$strata)
  data.frame(conf_type = conf_type, strata = strata, time = fit$time, n_risk = fit$n.risk,
             n_event = fit$n.event, n_censor = fit$n.censor, surv = fit$surv,
             std_err_log = fit$std.err, lower = fit$lower, upper = fit$upper)
}
km_block <- function(formula, data, label, at) {
  tables <- list()
  medians <- list()
  at_times <- list()
  for (ct in c("log", "log-log", "plain")) {
    fit <- survfit(formula, data = data, conf.type = ct)
    # Full curves for the default "log" type; the other types are checked at `at`.
    if (ct == "log") tables[[ct]] <- km_table(fit, ct)
    q <- quantile(fit, probs = 0.5)
    medians[[ct]] <- list(median = unname(q$quantile), lower = unname(q$lower),
                          upper = unname(q$upper))
    s <- summary(fit, times = at, extend = FALSE)
    at_times[[ct]] <- list(strata = as.character(s$strata %||% rep("all", length(s$time))),
                           time = s$time, surv = s$surv, std_err = s$std.err,
                           lower = s$lower, upper = s$upper, n_risk = s$n.risk)
  }
  write_csv_full(do.call(rbind, tables), paste0("reference_km_", label, ".csv"))
  list(medians = medians, at = at_times)
}

mg_km <- km_block(Surv(futime, death) ~ sex, mg, "mgus2_death", c(12, 60, 120, 400))
mg_diff <- survdiff(Surv(futime, death) ~ sex, data = mg)
rossi_km <- km_block(Surv(week, arrest) ~ fin, rossi, "rossi", c(10, 26, 52))
rossi_diff <- survdiff(Surv(week, arrest) ~ fin, data = rossi)
rossi_diff3 <- survdiff(Surv(week, arrest) ~ prio_band, data = rossi)

# Hand-made data for the median rules: a horizontal segment at exactly 0.5
# (midpoint rule), a curve that ends at exactly 0.5 (midpoint with the last time)
# and a curve that never reaches 0.5.
tiny <- data.frame(
  group = rep(c("a", "b", "c"), c(10, 6, 6)),
  time = c(1:10, c(1, 2, 3, 4, 5, 6), c(2, 4, 6, 8, 10, 12)),
  status = c(rep(1, 10), c(1, 1, 1, 0, 0, 0), c(1, 0, 0, 0, 0, 0))
)
write.csv(tiny, out("tiny_km.csv"), row.names = FALSE)
tiny_km <- km_block(Surv(time, status) ~ group, tiny, "tiny", c(3, 5))

write_json_full(list(
  mgus2_death = c(mg_km, list(logrank_chisq = mg_diff$chisq,
                              logrank_p = pchisq(mg_diff$chisq, 1, lower.tail = FALSE))),
  rossi = c(rossi_km, list(logrank_chisq = rossi_diff$chisq,
                           logrank_prio_band_chisq = rossi_diff3$chisq)),
  tiny = tiny_km
), "reference_km.json")

# ------------------------------------------------- synthetic cohort parts
stays_file <- out("synthetic_stays.csv")
if (file.exists(stays_file)) {
  source(file.path(here, "survival_reference_synthetic.R"))
}
cat("reference outputs written to", here, "\n")
