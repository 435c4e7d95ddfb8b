// Progress line: rate over this run's items only (resumed jobs), ETA from it, slow rates as seconds per item.
#include <gtest/gtest.h>

#include "core/progress.h"

using surgeon::Progress;

TEST(Progress, RateAndEtaCountFromTheFirstItem) {
    // A batched job whose first update jumps by 16 items: 16 items in 1,500 s -> 93.8 s/item, 48 left.
    Progress eval("eval", 64, false);
    EXPECT_EQ(eval.line(16, 1500.0), "eval 16/64 93.8 s/it ETA 1:15:00");
    Progress sample("sample", 20, false);
    EXPECT_EQ(sample.line(5, 10.0), "sample 5/20 0.50 it/s ETA 0:30");
}

TEST(Progress, ResumedJobCountsThisRunOnly) {
    Progress train("train", 1000, false, /*already_done=*/400);
    EXPECT_EQ(train.line(450, 10.0, "loss 0.0100"), "train 450/1000 loss 0.0100 5.00 it/s ETA 1:50");
}

TEST(Progress, NoRateYetGivesUnknownEta) {
    Progress p("x", 10, false);
    EXPECT_EQ(p.line(0, 0.0), "x 0/10 0.00 it/s ETA ?");
}
