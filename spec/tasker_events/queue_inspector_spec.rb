# frozen_string_literal: true

require "spec_helper"
require "tasker_events/queue_inspector"
require "pg"

RSpec.describe TaskerEvents::QueueInspector, :integration do
  let(:namespace) { unique_namespace("inspect") }

  it "pages through a queue by msg_id, oldest first, without consuming" do
    ids = publish_durable(namespace, 5)
    described_class.open(PrivatePostgres.url) do |inspector|
      newest = inspector.peek(namespace, limit: 2)
      expect(newest.map { |row| row[:message][:event_id] }).to eq(ids.last(2))

      first = inspector.peek(namespace, after: 0, limit: 3)
      rest = inspector.peek(namespace, after: first.last[:msg_id], limit: 10)
      expect((first + rest).map { |row| row[:message][:event_id] }).to eq(ids)
      expect((first + rest).map { |row| row[:read_ct] }).to all(eq(0))
      expect(inspector.last_msg_id(namespace)).to eq(rest.last[:msg_id])
    end
  end

  it "lists the namespace's queue with its metrics" do
    publish_durable(namespace, 2)
    queues = described_class.open(PrivatePostgres.url, &:queues)
    expect(queues.find { |q| q[:namespace] == namespace })
      .to include(queue_name: "#{namespace}_domain_events", queue_length: 2, total_messages: 2)
  end

  it "raises QueueNotFoundError naming a missing queue, ValidationError for a bad namespace" do
    publish_durable(namespace, 1)
    described_class.open(PrivatePostgres.url) do |inspector|
      expect { inspector.peek("absent_#{namespace}") }
        .to raise_error(TaskerEvents::QueueNotFoundError,
                        /absent_#{namespace}_domain_events does not exist.*#{namespace}_domain/)
      expect { inspector.peek("x; drop") }.to raise_error(TaskerEvents::ValidationError)
    end
  end

  it "raises PgmqNotInstalledError for a database without PGMQ" do
    with_fresh_database do |url|
      inspector = described_class.new(url)
      expect { inspector.queues }.to raise_error(TaskerEvents::PgmqNotInstalledError)
      expect(inspector.url).to eq(url)
      inspector.close
    end
  end

  it "raises DatabaseUnreachableError without the password when nothing listens" do
    expect { described_class.new(closed_port_url, connect_timeout_ms: 500) }
      .to raise_error(TaskerEvents::DatabaseUnreachableError) { |error|
        expect(error.message).to include("operator:***@", "refused")
        expect(error.message).not_to include("hunter2secret")
      }
  end

  it "refuses calls once closed, and may be closed twice" do
    publish_durable(namespace, 1)
    inspector = described_class.new(PrivatePostgres.url)
    expect(inspector.peek(namespace).size).to eq(1)
    inspector.close
    expect { inspector.peek(namespace) }.to raise_error(TaskerEvents::Error, /was closed/)
    expect { inspector.close }.not_to raise_error
  end
end
