# frozen_string_literal: true

require "spec_helper"
require "bigdecimal"
require "set"
require "date"

# What a caller gets for every kind of awkward input: a converted value (as subscribers and
# PGMQ consumers will see it), or a ValidationError naming the value and where it sits. Never
# a crash, a hang, or an event that vanishes without a count.
RSpec.describe "TaskerEvents.publish with bad input" do
  let(:namespace) { unique_namespace("input") }

  before { TaskerEvents.start(test_mode: true) }

  # The payload value as the event carries it, read back from the test-mode capture of its
  # PGMQ message (the JSON a consumer parses).
  def published_value(value)
    TaskerEvents.clear_captured
    id = TaskerEvents.publish("input.checked", { v: value }, namespace:)
    expect(id).to be_a(String)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)
    TaskerEvents.captured_messages.last[:message][:payload][:v]
  end

  def refused(value, mode: :durable)
    TaskerEvents.publish("input.checked", { v: value }, namespace:, delivery_mode: mode)
  rescue TaskerEvents::ValidationError => e
    e.message
  else
    raise "#{value.inspect[0, 80]} was accepted"
  end

  describe "values that are converted" do
    {
      "Time, as ISO 8601 with its fraction" => [Time.utc(2026, 1, 2, 3, 4, 5.25r),
                                                "2026-01-02T03:04:05Z"],
      "Date" => [Date.new(2026, 1, 2), "2026-01-02"],
      "DateTime" => [DateTime.new(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05+00:00"],
      "BigDecimal, as a decimal string that keeps its precision" =>
        [BigDecimal("12.345678901234567890123"), "12.345678901234567890123"],
      "Symbol, as its name" => [:card, "card"],
      "Set, as an array" => [Set[3, 1, 2], [3, 1, 2]],
      "Struct, as its members" => [Struct.new(:a, :b).new(1, "x"), { a: 1, b: "x" }],
      "Integer keys, as strings" => [{ 1 => "one" }, { "1": "one" }],
      "a Latin-1 string, as UTF-8" => ["caf\xe9".dup.force_encoding("ISO-8859-1"), "café"]
    }.each do |kind, (value, expected)|
      it "converts #{kind}" do
        got = published_value(value)
        # Time has sub-second digits; the rest is exact.
        expect(kind.start_with?("Time") ? got.sub(/\.\d+/, "") : got).to eq(expected)
      end
    end

    it "keeps a NUL character in a fast event, which never reaches PostgreSQL" do
      subscriber = recording_subscriber("input.*")
      TaskerEvents.publish("input.checked", { v: "a\u0000b" }, namespace:, delivery_mode: :fast)
      expect(TaskerEvents.flush(timeout: 5)).to be(true)
      expect(subscriber.received.last[:payload][:v]).to eq("a\u0000b")
    end
  end

  describe "values that raise ValidationError, an ArgumentError naming them" do
    cyclic_hash = {}.tap { |h| h[:self] = h }
    cyclic_array = [].tap { |a| a << a }
    deep = 10_000.times.inject({}) { |inner, _| { n: inner } }
    {
      "an object without a JSON form" => [Object.new, /payload\.v: a value of class Object/],
      "NaN" => [Float::NAN, /payload\.v: NaN has no JSON form/],
      "Infinity" => [Float::INFINITY, /payload\.v: inf has no JSON form/],
      "invalid UTF-8" => ["\xff\xfe".dup.force_encoding("UTF-8"), /payload\.v: .*not valid UTF-8/],
      "a binary string" => ["\x00\x01\xff".b, /payload\.v: .*not valid UTF-8/],
      "a cyclic Hash" => [cyclic_hash, /payload\.v\.self\.self.*….*deeper than 128.*cyclic/],
      "a cyclic Array" => [cyclic_array, /payload\.v\[0\]\[0\].*deeper than 128/],
      "10,000-deep nesting" => [deep, /payload\.v\.n\.n.*deeper than 128 levels/],
      "an Integer past 64 bits" => [2**70, /payload\.v: integer does not fit in 64 bits/],
      "a Rational" => [1/3r, /payload\.v: a value of class Rational has no JSON form/],
      "a Range, whose to_h raises" => [1..3, /payload\.v: Range#to_h raised TypeError/],
      "a nil Hash key" => [{ nil => 1 }, /payload\.v: hash key of class NilClass/],
      "a 50 MB string" => ["x" * 50_000_000, /payload: larger than max_payload_bytes \(1048576/],
      "a NUL character in a durable event" => ["a\u0000b", /payload\.v: contains U\+0000/]
    }.each do |kind, (value, message)|
      it "refuses #{kind}" do
        text = refused(value)
        expect(text).to match(message)
        expect(text.length).to be < 400
      end
    end

    it "refuses a NUL character in a broadcast event's metadata too" do
      expect do
        TaskerEvents.publish("input.checked", {}, namespace:, delivery_mode: :broadcast,
                                                  metadata: { note: "x\u0000" })
      end.to raise_error(TaskerEvents::ValidationError, /metadata\.note: contains U\+0000/)
    end

    it "counts nothing for a refused event and keeps the system working" do
      before = TaskerEvents.stats[:published]
      refused(Float::NAN)
      expect(TaskerEvents.stats[:published]).to eq(before)
      expect(published_value(1)).to eq(1)
    end

    it "lets an interrupt raised by a conversion method go on as it is" do
      value = Object.new
      def value.to_h = raise(Interrupt)
      expect { refused(value) }.to raise_error(Interrupt)
    end
  end

  describe "names and namespaces that try SQL or look alike" do
    [
      "x; drop table pgmq.meta",
      "payment.processed'; --",
      "payment.\"processed\"",
      "p\u0430yment.processed", # a Cyrillic а
      "payment.processed\u200b", # a zero-width space
      "#{"a" * 500}.#{"b" * 499}"
    ].each do |name|
      it "refuses the event name #{name.inspect[0, 40]}, naming it" do
        expect { TaskerEvents.publish(name, {}, namespace:) }
          .to raise_error(TaskerEvents::ValidationError) { |e|
            expect(e.message).to start_with("invalid event name \"#{name[0, 3]}")
            expect(e.message.length).to be < 400
          }
      end
    end

    ["x; drop table pgmq.meta", "o'neil", "p\u0430yments", "a" * 34, ""].each do |namespace|
      it "refuses the namespace #{namespace.inspect[0, 40]}, naming it" do
        expect { TaskerEvents.publish("a.b", {}, namespace:) }
          .to raise_error(TaskerEvents::ValidationError, /invalid namespace/)
      end
    end
  end
end
