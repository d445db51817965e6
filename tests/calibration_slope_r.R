# Reference for tests/fit_warnings.rs: the calibration slope and its standard error from
# R's survival::coxph (Efron ties, the default) on GBSG2 with a fixed, made-up prediction
#   S_i(1825) = exp(-0.35 * exp(0.04 * (pnodes - 5) + 0.01 * (age - 50) - 0.5 * horTh))
# and a second one, S2_i = exp(-exp(0.6 * log(-log S_i) - 0.2)),
# regressed as c_i = log(-log S_i). Run from the project root:
#   Rscript tests/calibration_slope_r.R > tests/calibration_slope_r.json
suppressPackageStartupMessages(library(survival))
d <- read.csv("../shared/data/clinical/gbsg2.csv")
s <- exp(-0.35 * exp(0.04 * (d$pnodes - 5) + 0.01 * (d$age - 50) - 0.5 * d$horTh))
d$c <- log(-log(s))
f <- coxph(Surv(time, event) ~ c, data = d)
s2 <- exp(-exp(0.6 * d$c - 0.2))  # over-dispersed on the cloglog scale: slope about 1/0.6 of the first
d$c2 <- log(-log(s2))
f2 <- coxph(Surv(time, event) ~ c2, data = d)
cat(sprintf(paste0('{"r_version": "%s", "survival_version": "%s", "ties": "efron",\n',
                   ' "slope": %.17g, "slope_se": %.17g,\n',
                   ' "slope_2": %.17g, "slope_se_2": %.17g}\n'),
            paste(R.version$major, R.version$minor, sep = "."), as.character(packageVersion("survival")),
            coef(f)[[1]], sqrt(vcov(f)[1, 1]), coef(f2)[[1]], sqrt(vcov(f2)[1, 1])))
