# Reference numbers for tests/qi (R is kept out of CI: run this by hand and
# commit the CSV files it writes next to it).
#
#   cd tests/qi/reference && Rscript make_reference.R
#
# R 4.2.2, metafor 4.x.  Every block names the R function whose output the
# Python code must reproduce.

suppressMessages(library(metafor))
options(digits = 15)
out <- function(x, file) write.csv(x, file, row.names = FALSE)

# 1. Anhoej rules: critical values (qicharts2 vignette, Appendix 2 formula)
n <- 1:200
out(data.frame(n_useful = n,
               longest_run_max = round(log2(n) + 3),
               n_crossings_min = qbinom(0.05, pmax(n - 1, 0), 0.5)),
    "anhoej_limits.csv")

# 2. Series of the qicharts2 vignette ("Your first run and control charts")
#    and of the crossrun vignette (Figure 1).  Their published summaries are
#    quoted in test_spc_reference.py; here we only regenerate the data.
set.seed(19)
y <- rnorm(24)
y[22] <- 4
y[13:24] <- rnorm(12, mean = 2)
out(data.frame(y = y), "qicharts2_vignette_series.csv")
set.seed(32)
out(data.frame(y = rnorm(24)), "crossrun_vignette_series.csv")

# 3. Intervals: prop.test(correct = FALSE), poisson.test, t.test
grid <- expand.grid(x = c(0, 1, 3, 7, 10, 25), n = c(10, 25, 60))
grid <- grid[grid$x <= grid$n, ]
w <- t(mapply(function(x, n) prop.test(x, n, correct = FALSE)$conf.int, grid$x, grid$n))
out(cbind(grid, lower = w[, 1], upper = w[, 2]), "wilson.csv")
pg <- expand.grid(events = c(0, 1, 4, 17, 120), exposure = c(50, 333.5))
p <- t(mapply(function(x, t) poisson.test(x, t)$conf.int, pg$events, pg$exposure))
out(cbind(pg, lower = p[, 1], upper = p[, 2]), "poisson.csv")

# 4. Funnel limits, Spiegelhalter (2005) Appendix A.1.1, with qbinom/ppois
interpolated <- function(p, quant, cdf) {
  r <- quant(p)
  (r - (cdf(r) - p) / (cdf(r) - cdf(r - 1)))
}
probs <- c(0.001, 0.025, 0.975, 0.999)
ns <- c(5, 12, 40, 100, 333, 1000)
fp <- expand.grid(precision = ns, p = probs)
fp$limit <- mapply(function(n, p) interpolated(p, function(q) qbinom(q, n, 0.3),
                                               function(r) pbinom(r, n, 0.3)) / n,
                   fp$precision, fp$p)
fp$kind <- "proportion"; fp$target <- 0.3
es <- c(0.7, 3.2, 15, 48.5, 210)
fr <- expand.grid(precision = es, p = probs)
fr$limit <- mapply(function(e, p) interpolated(p, function(q) qpois(q, e),
                                               function(r) ppois(r, e)) / e,
                   fr$precision, fr$p)
fr$kind <- "ratio"; fr$target <- 1
out(rbind(fp, fr), "funnel_limits.csv")

# 5. Random effects: DerSimonian-Laird and REML tau^2 and BLUPs on the BCG
#    vaccine trials (metafor::dat.bcg, log risk ratios).
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(clinic_id = sprintf("T%02d", dat$trial), yi = as.numeric(dat$yi),
                  vi = as.numeric(dat$vi))
out(bcg, "bcg.csv")
ctl <- list(threshold = 1e-12, maxiter = 1000)
rows <- list()
for (m in c("DL", "REML")) {
  fit <- rma(yi, vi, data = bcg, method = m, control = ctl)
  b <- blup(fit)
  rows[[m]] <- data.frame(method = m, clinic_id = bcg$clinic_id, tau2 = fit$tau2,
                          mu = as.numeric(fit$b), mu_se = fit$se,
                          pred = b$pred, se = b$se, pi_lb = b$pi.lb, pi_ub = b$pi.ub)
}
out(do.call(rbind, rows), "bcg_blup.csv")

# 6. Spiegelhalter overdispersion on a proportion indicator (20 units),
#    written independently here: z on target, 10%/90% winsorised (type 7
#    quantiles), phi, additive tau^2.
set.seed(2005)
units <- 20
size <- round(runif(units, 20, 400))
true <- plogis(qlogis(0.4) + rnorm(units, 0, 0.35))
events <- rbinom(units, size, true)
target <- sum(events) / sum(size)
s <- sqrt(target * (1 - target) / size)
z <- (events / size - target) / s
lim <- quantile(z, c(0.1, 0.9), type = 7)
zw <- pmin(pmax(z, lim[1]), lim[2])
phi <- mean(zw^2)
wt <- 1 / s^2
tau2 <- max(0, (units * phi - (units - 1)) / (sum(wt) - sum(wt^2) / sum(wt)))
phi_raw <- mean(z^2)
tau2_raw <- max(0, (units * phi_raw - (units - 1)) / (sum(wt) - sum(wt^2) / sum(wt)))
dl <- rma(events / size, s^2, method = "DL")$tau2
out(data.frame(clinic_id = sprintf("U%02d", 1:units), n = size, events = events),
    "overdispersion_units.csv")
out(data.frame(target = target, phi = phi, tau2 = tau2, phi_raw = phi_raw,
               tau2_raw = tau2_raw, tau2_metafor_dl = dl,
               p_value = pchisq(units * phi, units - 1, lower.tail = FALSE)),
    "overdispersion_reference.csv")

# 7. Case mix: logistic and linear models on a simulated patient file
set.seed(6)
np <- 1500
clinic <- sample(sprintf("C%02d", 1:8), np, replace = TRUE,
                 prob = c(.3, .2, .15, .1, .1, .08, .05, .02))
claim <- rbinom(np, 1, 0.25) == 1
age_band <- sample(c("18-29", "30-39", "40-49", "50-59", "60-69"), np, replace = TRUE)
baseline <- round(rnorm(np, 45, 12))
lp <- 0.8 - 0.9 * claim - 0.03 * (baseline - 45) + ifelse(age_band == "60-69", -0.4, 0) +
  ifelse(clinic == "C03", -0.8, 0)
responder <- rbinom(np, 1, plogis(lp))
change <- -14 + 5 * claim + 0.2 * (baseline - 45) + ifelse(clinic == "C03", 6, 0) +
  rnorm(np, 0, 9)
pat <- data.frame(clinic_id = clinic, claim = claim, age_band = age_band,
                  baseline_score = baseline, responder = responder, change = change)
out(pat, "casemix_patients.csv")
g <- glm(responder ~ claim + age_band + baseline_score, family = binomial, data = pat)
l <- lm(change ~ claim + age_band + baseline_score, data = pat)
pat$p <- fitted(g)
pat$e <- fitted(l)
agg <- do.call(rbind, lapply(split(pat, pat$clinic_id), function(d) data.frame(
  clinic_id = d$clinic_id[1], n = nrow(d), observed = sum(d$responder),
  expected = sum(d$p), variance = sum(d$p * (1 - d$p)),
  mean_change = mean(d$change), mean_expected_change = mean(d$e))))
agg$oe_ratio <- agg$observed / agg$expected
agg$sigma <- summary(l)$sigma
out(agg, "casemix_reference.csv")
