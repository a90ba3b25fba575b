# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::RSpec::HavePublishedDomainEvent do
  def publish(name, payload = {}, mode: :durable, namespace: "payments", **options)
    TaskerEvents.publish(name, payload, namespace:, delivery_mode: mode, **options)
  end

  # The message of the expectation failure the block raises; an error when it passes.
  def failure_of
    yield
  rescue RSpec::Expectations::ExpectationNotMetError => e
    e.message
  else
    raise "the expectation passed, but it was meant to fail"
  end

  describe "passing", :tasker_events_test_mode do
    it "needs only the event name, which may be a Symbol or a matcher" do
      expect { publish("payment.processed") }.to have_published_domain_event("payment.processed")
      expect { publish("payment.processed") }.to have_published_domain_event(:"payment.processed")
      expect { publish("payment.processed") }.to have_published_domain_event(/\Apayment\./)
    end

    it "checks payload, metadata, delivery mode and count together" do
      expect do
        publish("payment.processed", { transaction_id: "TXN-1", amount: 99.99 })
      end.to have_published_domain_event("payment.processed")
        .with_payload(hash_including(amount: 99.99)).with_metadata(namespace: "payments")
        .in_mode(:durable).exactly(1).times
    end

    it "compares a payload Hash whole, with String or Symbol keys and matchers inside" do
      payload = { amount: 99.99, card: { "last4" => "4242" }, items: [1, 2] }
      expect { publish("payment.processed", payload) }
        .to have_published_domain_event("payment.processed")
        .with_payload("amount" => a_value > 10, "card" => { last4: "4242" }, items: [1, 2])
      expect { publish("payment.processed", payload) }
        .not_to have_published_domain_event("payment.processed").with_payload(amount: 99.99)
    end

    it "matches a fast event's payload, published with String keys, by Symbol keys too" do
      payload = { "amount" => 99.99, "card" => { "last4" => "4242" } }
      expect { publish("payment.processed", payload, mode: :fast) }
        .to have_published_domain_event("payment.processed")
        .with_payload(amount: 99.99, card: { last4: "4242" }).in_mode(:fast)
    end

    it "checks only the metadata keys a Hash names, or all of it with a matcher" do
      task_uuid = SecureRandom.uuid
      publish_it = lambda do
        publish("payment.processed", task_uuid:, step_name: "charge", metadata: { region: "eu" })
      end
      expect(&publish_it).to have_published_domain_event("payment.processed")
        .with_metadata(task_uuid:, "region" => "eu", correlation_id: task_uuid)
      expect(&publish_it).to have_published_domain_event("payment.processed")
        .with_metadata(a_hash_including(step_name: "charge", fired_by: "default"))
      expect(&publish_it).not_to have_published_domain_event("payment.processed")
        .with_metadata(region: "us")
    end

    it "tells the delivery modes apart" do
      publish_each = lambda do
        publish("a.durable")
        publish("a.fast", mode: :fast)
        publish("a.broadcast", mode: "broadcast")
      end
      expect(&publish_each)
        .to have_published_domain_event("a.durable").in_mode(:durable).once
        .and have_published_domain_event("a.fast").in_mode(:fast).once
        .and have_published_domain_event("a.broadcast").in_mode(:broadcast).once
        .and have_published_domain_event(/\Aa\./).in_mode(:fast).once
    end

    it "counts exactly, at least and at most" do
      publish_twice = -> { 2.times { publish("payment.processed") } }
      expect(&publish_twice).to have_published_domain_event("payment.processed").twice
      expect(&publish_twice).to have_published_domain_event("payment.processed").at_least(2)
      expect(&publish_twice).to have_published_domain_event("payment.processed").at_least(:once)
      expect(&publish_twice).to have_published_domain_event("payment.processed").at_most(3).times
      expect { publish("payment.processed") }.to have_published_domain_event("payment.processed")
        .once
      expect { nil }.to have_published_domain_event("payment.processed").exactly(0).times
    end

    it "ignores what was published before the block" do
      publish("payment.processed")
      expect { publish("payment.failed") }.not_to have_published_domain_event("payment.processed")
    end

    it "sees the events of a declared step, which publishers make on the drain thread" do
      TaskerEvents.shutdown
      path = write_step_template("payments", [{ "name" => "payment.captured",
                                                "delivery_mode" => "broadcast" }])
      TaskerEvents::RSpec.start_test_mode!(templates: [path])
      context = declared_step_context("payments")
      expect { TaskerEvents.dispatch_step_events(context, { success: true, result: { a: 1 } }) }
        .to have_published_domain_event("payment.captured").with_payload(a: 1)
        .with_metadata(step_uuid: context[:step_uuid]).in_mode(:broadcast).once
    end
  end

  describe "failure messages", :tasker_events_test_mode do
    it "say nothing was published" do
      message = failure_of { expect { nil }.to have_published_domain_event("payment.processed") }
      expect(message).to eq(<<~TEXT.chomp)
        expected the block to publish domain event "payment.processed" at least once, but it published no such event.
        Nothing was published in the block.
      TEXT
    end

    it "list what was published instead, with the first criterion each event failed" do
      publish_others = lambda do
        publish("payment.failed", { amount: 99.99 })
        publish("payment.processed", { amount: 99.99 }, mode: :fast)
        publish("payment.processed", { amount: 5 })
        publish("payment.processed", { amount: 99.99 }, namespace: "billing")
      end
      message = failure_of do
        expect(&publish_others)
          .to have_published_domain_event("payment.processed").with_payload(amount: 99.99)
          .with_metadata(namespace: "payments").in_mode(:durable)
      end
      expect(message).to eq(<<~TEXT.chomp)
        expected the block to publish domain event "payment.processed" with payload {:amount=>99.99} with metadata including {:namespace=>"payments"} in mode :durable at least once, but it published no such event.
        Published in the block (4):
          - "payment.failed" in mode :durable, payload {:amount=>99.99}, metadata {:namespace=>"payments"}: another event name
          - "payment.processed" in mode :fast, payload {:amount=>99.99}, metadata {:namespace=>"payments"}: another delivery mode
          - "payment.processed" in mode :durable, payload {:amount=>5}, metadata {:namespace=>"payments"}: payload does not match
          - "payment.processed" in mode :durable, payload {:amount=>99.99}, metadata {:namespace=>"billing"}: metadata does not match
      TEXT
    end

    it "describe matchers given for the payload and metadata" do
      message = failure_of do
        expect { publish("payment.processed", { amount: 5 }, metadata: { region: "eu" }) }
          .to have_published_domain_event("payment.processed")
          .with_payload(hash_including(amount: a_value > 10))
          .with_metadata(a_hash_including(region: "us"))
      end
      expect(message).to start_with(
        'expected the block to publish domain event "payment.processed" with payload ' \
        "hash_including(:amount=>\"a value > 10\") with metadata a hash including " \
        '{:region => "us"} at least once'
      )
      expect(message).to include("payload {:amount=>5}, metadata {", ':region=>"eu"',
                                 "payload does not match")
    end

    it "give the count expected and the count published" do
      publish_twice = -> { 2.times { publish("payment.processed") } }
      cases = {
        have_published_domain_event("payment.processed").once =>
          "exactly 1 time, but it published 2 such events.",
        have_published_domain_event("payment.processed").exactly(3).times =>
          "exactly 3 times, but it published 2 such events.",
        have_published_domain_event("payment.processed").at_least(3) =>
          "at least 3 times, but it published 2 such events.",
        have_published_domain_event("payment.processed").at_most(1) =>
          "at most 1 time, but it published 2 such events."
      }
      cases.each do |matcher, expected|
        message = failure_of { expect(&publish_twice).to matcher }
        expect(message).to include(expected)
        expect(message.lines.last).to eq(
          '  - "payment.processed" in mode :durable, payload {}, metadata ' \
          '{:namespace=>"payments"}: matches'
        )
      end
    end

    it "list the matching events when negated" do
      message = failure_of do
        expect { publish("payment.processed", { amount: 1 }, mode: :fast) }
          .not_to have_published_domain_event("payment.processed")
      end
      expect(message).to eq(<<~TEXT.chomp)
        expected the block not to publish domain event "payment.processed" at least once, but it published 1 such event.
        Published in the block (1):
          - "payment.processed" in mode :fast, payload {:amount=>1}, metadata {:namespace=>"payments"}: matches
      TEXT
    end

    it "list the first ten events only" do
      message = failure_of do
        expect { 12.times { |i| publish("order.placed", { i: }) } }
          .to have_published_domain_event("order.shipped")
      end
      expect(message.lines.size).to eq(13)
      expect(message.lines[11]).to include("payload {:i=>9}")
      expect(message.lines.last).to eq("  ... and 2 more")
    end

    it "say when events published in the block are no longer held by the capture" do
      message = failure_of do
        expect do
          publish("payment.processed")
          TaskerEvents.clear_captured
          publish("payment.failed")
        end.to have_published_domain_event("payment.processed")
      end
      expect(message).to end_with(
        "1 events published in the block were no longer held by the capture (past its limit " \
        "of 10000, or cleared) and were not checked."
      )
    end
  end

  describe "when events are still in flight", :tasker_events_test_mode do
    let(:release) { Queue.new }
    let(:recorder) { TaskerEvents::RSpec::Recorder.new(flush_timeout: 0.05) }

    # A subscriber that holds the drain thread until the example releases it, so that flush
    # cannot finish: what it does then does not depend on timing.
    before { recording_subscriber("payment.#") { release.pop } }
    # Closed, every wait on it ends, however many events the subscriber still has.
    after { release.close }

    it "neither passes nor passes negated, and says why" do
      publish_it = -> { publish("payment.processed", mode: :fast) }
      matcher = described_class.new("payment.processed", recorder:)
      expect(matcher.matches?(publish_it)).to be(false)
      expect(matcher.failure_message).to end_with(
        "TaskerEvents.flush did not finish within 0.05s: events may still have been in flight."
      )
      expect(described_class.new("order.placed", recorder:).does_not_match?(publish_it))
        .to be(false)
    end
  end

  describe "misuse" do
    it "raises without test mode, saying how to start it" do
      expect { expect { nil }.to have_published_domain_event("a.b") }
        .to raise_error(TaskerEvents::Error, "recording domain events needs test mode, and " \
                                             "TaskerEvents is not running: tag the example " \
                                             ":tasker_events_test_mode or call " \
                                             "TaskerEvents::RSpec.start_test_mode! first")
      TaskerEvents.start
      expect { expect { nil }.not_to have_published_domain_event("a.b") }
        .to raise_error(TaskerEvents::Error, /and TaskerEvents runs without test_mode: /)
    end

    it "raises for an unknown delivery mode or a count that is not one" do
      expect { have_published_domain_event("a.b").in_mode(:loud) }
        .to raise_error(ArgumentError, "in_mode expects :durable, :fast or :broadcast, got :loud")
      expect { have_published_domain_event("a.b").exactly(-1) }
        .to raise_error(ArgumentError, "exactly expects a count of at least 0, got -1")
      expect { have_published_domain_event("a.b").at_least("2") }
        .to raise_error(ArgumentError, 'at_least expects a count of at least 0, got "2"')
    end

    it "needs a block", :tasker_events_test_mode do
      matcher = have_published_domain_event("a.b")
      expect(matcher.supports_value_expectations?).to be(false)
      expect { matcher.matches?(TaskerEvents) }
        .to raise_error(ArgumentError, /needs a block: expect \{ \.\.\. \}\.to have_published/)
    end
  end

  it "describes itself for generated example names" do
    matcher = have_published_domain_event("a.b").with_payload(x: 1).in_mode(:fast).twice
    expect(matcher.description)
      .to eq('have published domain event "a.b" with payload {:x=>1} in mode :fast exactly 2 times')
  end
end
