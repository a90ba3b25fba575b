# frozen_string_literal: true

require "spec_helper"
require "stringio"
require "tasker_events/demo"

RSpec.describe TaskerEvents::Demo, :integration do
  let(:out) { StringIO.new }
  let(:progress) { StringIO.new }

  it "leaves its durable events in the queue, unread, for consumers" do
    with_fresh_database do |url|
      stats = described_class.new(database_url: url, out:, progress:).run

      expect(stats[:published]).to eq(durable: 1, fast: 1, broadcast: 2)
      rows = TaskerEvents::QueueInspector.open(url) { |inspector| inspector.peek("payments") }
      expect(rows.map { |row| [row[:message][:event_name], row[:read_ct]] })
        .to eq([["payment.processed", 0], ["payment.receipt_sent", 0], ["payment.refunded", 0]])
      expect(out.string.scan("[pgmq msg").size).to eq(3)
      expect(TaskerEvents.started?).to be(false)
    end
  end

  it "refuses to run inside a process whose event system is already running" do
    TaskerEvents.start
    expect { described_class.new(database_url: "postgres://x", out:, progress:).run }
      .to raise_error(TaskerEvents::Error, /already started/)
  end
end
