// Vocab ids, CSR attributes and the read report's message cap.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "liber/data.h"

namespace {

TEST(DataVocab, IdsAreDenseFromOneAndStable) {
  liber::Vocab v;
  EXPECT_EQ(v.size(), 1u);  // only the reserved id 0
  EXPECT_EQ(v.add("b"), 1u);
  EXPECT_EQ(v.add("a"), 2u);
  EXPECT_EQ(v.add("b"), 1u);
  EXPECT_EQ(v.size(), 3u);
  EXPECT_EQ(v.find("a"), 2u);
  EXPECT_EQ(v.find("zzz"), 0u);
  EXPECT_EQ(v.key(1), "b");
  EXPECT_EQ(v.key(0), "");
  // The empty key is "missing": never an entity.
  EXPECT_EQ(v.add(""), 0u);
  EXPECT_EQ(v.find(""), 0u);
  EXPECT_EQ(v.size(), 3u);
  // Keys longer than the small-string buffer work the same.
  const std::string long_key(100, 'k');
  EXPECT_EQ(v.add(long_key), 3u);
  EXPECT_EQ(v.find(long_key), 3u);
}

TEST(DataVocab, AttributeRowsAreCsr) {
  liber::Attribute a;
  a.name = "genres";
  a.multi = true;
  a.push_row({});  // row 0: unknown entity
  a.push_row(std::vector<std::string>{"Comedy", "Drama"});
  a.push_row(std::vector<std::string>{"", "Drama", "Drama"});  // empty skipped, dup once
  a.push_row(std::vector<std::string>{});
  ASSERT_EQ(a.rows(), 4u);
  EXPECT_TRUE(a.row(0).empty());
  ASSERT_EQ(a.row(1).size(), 2u);
  EXPECT_EQ(a.vocab.key(a.row(1)[0]), "Comedy");
  EXPECT_EQ(a.vocab.key(a.row(1)[1]), "Drama");
  ASSERT_EQ(a.row(2).size(), 1u);
  EXPECT_EQ(a.row(2)[0], a.row(1)[1]);
  EXPECT_TRUE(a.row(3).empty());
  EXPECT_EQ(a.max_row_length(), 2u);
  EXPECT_EQ(a.vocab.size(), 3u);
}

TEST(DataVocab, TablesFindAttributesByName) {
  liber::ItemCatalog items;
  liber::Attribute g;
  g.name = "genres";
  items.attributes.push_back(g);
  EXPECT_NE(items.attribute("genres"), nullptr);
  EXPECT_EQ(items.attribute("brand"), nullptr);
  liber::UserTable users;
  liber::Attribute gender;
  gender.name = "gender";
  users.attributes.push_back(gender);
  ASSERT_NE(users.attribute("gender"), nullptr);
  EXPECT_EQ(users.attribute("gender")->name, "gender");
  EXPECT_EQ(users.attribute("age"), nullptr);
}

TEST(DataVocab, ReportKeepsAtMostMaxMessages) {
  liber::ReadReport r;
  for (int i = 0; i < 100; ++i) r.note("m" + std::to_string(i));
  ASSERT_EQ(r.messages.size(), liber::ReadReport::kMaxMessages);
  EXPECT_EQ(r.messages.front(), "m0");  // the first problems are the ones kept
}

}  // namespace
