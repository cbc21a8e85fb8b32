# Reference numbers on the synthetic cohort (sourced by survival_reference.R,
# which defines `here`, `out`, `write_json_full`, `write_csv_full`).
# Inputs written by make_synthetic.py (stepanalytics.synth, seed 2026, 300 patients).

stays <- read.csv(out("synthetic_stays.csv"), stringsAsFactors = FALSE)
stays$compensation_claim <- as.logical(stays$compensation_claim)

# ---- Kaplan-Meier: time to progression out of phase 2, first stays, by protocol
ph2 <- subset(stays, phase == 2 & entry == "first")
km2 <- survfit(Surv(duration_days, outcome == "progressed") ~ protocol, data = ph2)
km2_curve <- km_table(km2, "log")
write_csv_full(km2_curve, "reference_synthetic_km_phase2.csv")
q2 <- quantile(km2, probs = 0.5)
d2 <- survdiff(Surv(duration_days, outcome == "progressed") ~ protocol, data = ph2)

# ---- competing risks out of phase 1, first stays
ph1 <- subset(stays, phase == 1 & entry == "first")
kinds <- sort(setdiff(unique(ph1$outcome), "censored"))
ph1$outcome_f <- factor(ph1$outcome, levels = c("censored", kinds))
cif1 <- survfit(Surv(duration_days, outcome_f) ~ 1, data = ph1)
cif1_curve <- data.frame(time = cif1$time, n_risk = cif1$n.risk[, 1], cif1$pstate, cif1$std.err)
names(cif1_curve) <- c("time", "n_risk", paste0("p_", cif1$states), paste0("se_", cif1$states))
write_csv_full(cif1_curve, "reference_synthetic_cif_phase1.csv")
ci1 <- cuminc(ph1$duration_days, as.character(ph1$outcome), cencode = "censored")
tp1 <- timepoints(ci1, c(30, 60, 90, 180))

# ---- multi-state model of the programme (pauses as a state, and merged)
ms_fit <- function(file) {
  msm <- read.csv(out(file), stringsAsFactors = FALSE)
  states <- sort(unique(c(msm$from_state, setdiff(msm$to_state, "censored"))))
  msm$to <- factor(msm$to_state, levels = c("censored", states))
  msm$from <- factor(msm$from_state, levels = states)
  fit <- survfit(Surv(tstart, tstop, to) ~ 1, data = msm, id = patient_id, istate = from)
  curve <- data.frame(time = fit$time, fit$pstate, fit$std.err)
  names(curve) <- c("time", paste0("p_", fit$states), paste0("se_", fit$states))
  # Long format, only where a hazard steps: transition (R state numbers "from.to"), time, value.
  steps <- lapply(colnames(fit$cumhaz), function(tr) {
    h <- fit$cumhaz[, tr]
    moved <- c(h[1] > 0, diff(h) > 0)
    data.frame(transition = tr, time = fit$time[moved], cumhaz = h[moved])
  })
  haz <- do.call(rbind, steps)
  rm <- summary(fit, rmean = 365)$table
  list(fit = fit, curve = curve, cumhaz = haz,
       rmean = list(states = rownames(rm), rmean = unname(rm[, "rmean"])),
       transitions = fit$transitions)
}
msA <- ms_fit("synthetic_msm.csv")
write_csv_full(msA$curve, "reference_synthetic_msm_curve.csv")
write_csv_full(msA$cumhaz, "reference_synthetic_msm_cumhaz.csv")
msB <- ms_fit("synthetic_msm_merged.csv")
write_csv_full(msB$curve, "reference_synthetic_msm_merged_curve.csv")

# ---- Cox: progression out of phase 1, first stays, clinic as cluster / strata
ph1$progressed <- ph1$outcome == "progressed"
cx_cluster <- coxph(Surv(duration_days, progressed) ~ compensation_claim + pain_duration_months +
                      protocol, data = ph1, ties = "efron", cluster = clinic_id)
cx_strata <- coxph(Surv(duration_days, progressed) ~ compensation_claim + pain_duration_months +
                     strata(clinic_id), data = ph1, ties = "efron")

# ---- Cox per transition, clock forward (delayed entry), patients as clusters
msm <- read.csv(out("synthetic_msm.csv"), stringsAsFactors = FALSE)
msm$compensation_claim <- as.logical(msm$compensation_claim)
from1 <- subset(msm, from_state == "phase 1")
cx_trans <- coxph(Surv(tstart, tstop, to_state == "phase 2") ~ compensation_claim, data = from1,
                  ties = "efron", cluster = patient_id)

write_json_full(list(
  cox_transition = cox_entry(cx_trans, cox.zph(cx_trans)),
  km_phase2 = list(strata = names(km2$strata), median = unname(q2$quantile),
                   lower = unname(q2$lower), upper = unname(q2$upper),
                   logrank_chisq = d2$chisq),
  cif_phase1 = list(states = cif1$states, times = c(30, 60, 90, 180),
                    cuminc_names = names(ci1)[seq_along(kinds)],
                    cuminc_est = tp1$est, cuminc_var = tp1$var),
  msm = list(states = msA$fit$states, rmean = msA$rmean, p0 = unname(msA$fit$p0)),
  msm_merged = list(states = msB$fit$states, rmean = msB$rmean),
  cox_cluster = cox_entry(cx_cluster, cox.zph(cx_cluster)),
  cox_strata = cox_entry(cx_strata, cox.zph(cx_strata))
), "reference_synthetic.json")
